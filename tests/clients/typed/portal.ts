// A portal team's script, written against the types openapi-typescript generates from the
// gateway's /openapi.json (./schema.d.ts, beside this file when it is compiled) and called
// through openapi-fetch; nothing else: no hand-written type, no cast.
//
// It logs in, lists calls with a filter following the cursor, creates and updates a customer,
// books an appointment, reads the calendar, then provokes 401, 403, 404, 409, 422, 429 and 304.
// Each error is narrowed by its `status` to the problem type the document gives that status,
// whose `detail`, `request_id` and extension members are then read as typed values: with a
// document that does not make that possible, `tsc --strict` refuses this file. Every runtime
// mismatch is printed; the exit status is 1 if there was any (tests/test_generated_clients.py).
//
//   node portal.js BASE_URL --email E --password P --viewer-email E --viewer-password P
//                  --tag T --book 2029-12-03T10:00:00 [--forwarded-for ADDRESS]
import createClient from "openapi-fetch";
import { parseArgs } from "node:util";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type ProblemFields = Pick<Schemas["Problem"], "status" | "detail" | "request_id">;

// a page of the calls list: small enough that the demo company's answered calls take several
const PAGE = 50;
// billing's endpoint quota for the free tier is 20 an hour (conf/gateway.yaml)
const RATE_LIMIT_ATTEMPTS = 40;
// a customer id no company has (ids are 64-bit)
const MISSING_ID = 2 ** 52;

const mismatches: string[] = [];

function check(condition: unknown, what: string): boolean {
  if (!condition) {
    mismatches.push(what);
    console.error(`MISMATCH: ${what}`);
  }
  return Boolean(condition);
}

/** The problem's status, detail and request_id (the X-Request-ID it was answered with). */
function checkProblem(problem: ProblemFields, response: Response, what: string): void {
  check(problem.status === response.status, `${what}: problem status ${problem.status}, HTTP ${response.status}`);
  check(problem.detail.length > 0, `${what}: no detail`);
  check(
    problem.request_id !== null && problem.request_id === response.headers.get("X-Request-ID"),
    `${what}: request_id ${problem.request_id} is not the X-Request-ID ${response.headers.get("X-Request-ID")}`,
  );
}

function unexpected(what: string, response: Response, body: unknown): void {
  check(false, `${what}: HTTP ${response.status} ${JSON.stringify(body)?.slice(0, 300)}`);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    email: { type: "string" },
    password: { type: "string" },
    "viewer-email": { type: "string" },
    "viewer-password": { type: "string" },
    tag: { type: "string" },
    book: { type: "string" },
    "forwarded-for": { type: "string" },
  },
});

function required(name: string, value: string | undefined): string {
  if (value === undefined) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
  return value;
}

const baseUrl = required("base-url (the first argument)", positionals[0]);
const tag = Number(required("tag", values.tag));
const book = required("book", values.book);
const forwarded: Record<string, string> = values["forwarded-for"] ? { "X-Forwarded-For": values["forwarded-for"] } : {};

const anonymous = createClient<paths>({ baseUrl, headers: forwarded });

function clientWith(token: string) {
  return createClient<paths>({ baseUrl, headers: { ...forwarded, Authorization: `Bearer ${token}` } });
}

async function logIn(email: string, password: string): Promise<string | undefined> {
  const { data, error, response } = await anonymous.POST("/api/v1/auth/token", { body: { email, password } });
  if (data === undefined) {
    unexpected(`log in as ${email}`, response, error);
    return undefined;
  }
  const token: Schemas["TokenOut"] = data;
  return token.access_token;
}

async function main(): Promise<void> {
  const token = await logIn(required("email", values.email), required("password", values.password));
  if (token === undefined) return;
  const portal = clientWith(token);

  // every answered call, page by page
  const seen: number[] = [];
  let pages = 0;
  let cursor: string | undefined;
  let etag: string | null = null;
  for (;;) {
    const { data, error, response } = await portal.GET("/api/v1/calls", {
      params: { query: { status: "answered", limit: PAGE, cursor } },
    });
    if (data === undefined) {
      unexpected(`list calls page ${pages + 1}`, response, error);
      break;
    }
    pages += 1;
    etag ??= response.headers.get("ETag");
    const page: Schemas["CallPage"] = data;
    check(page.data.every((call) => call.status === "answered"), `page ${pages} holds a call that was not answered`);
    seen.push(...page.data.map((call) => call.id));
    if (page.next_cursor === null) break;
    cursor = page.next_cursor;
  }
  check(pages > 1, `the answered calls took ${pages} page(s): the cursor was never followed`);
  check(new Set(seen).size === seen.length, "a call came back on two pages");
  check(etag, "the calls list has no ETag");

  const phone = `+1415555${String(tag % 10000).padStart(4, "0")}`;
  const created = await portal.POST("/api/v1/customers", {
    body: { name: `Portal Customer ${tag}`, phone, email: `portal-${tag}@example.com` },
  });
  if (created.data === undefined || created.response.status !== 201) {
    unexpected("create a customer", created.response, created.error);
    return;
  }
  const customer: Schemas["CustomerOut"] = created.data;
  const updated = await portal.PATCH("/api/v1/customers/{customer_id}", {
    params: { path: { customer_id: customer.id } },
    body: { notes: "prefers mornings" },
  });
  check(updated.data?.notes === "prefers mornings", `update the customer: ${JSON.stringify(updated.error)}`);

  const booked = await portal.POST("/api/v1/appointments", {
    body: { customer_id: customer.id, starts_at: book, duration_minutes: 30, title: "Consultation" },
  });
  if (booked.data === undefined) {
    unexpected("book", booked.response, booked.error);
    return;
  }
  const appointment: Schemas["AppointmentOut"] = booked.data;
  check(appointment.starts_at.startsWith(book), `booked at ${appointment.starts_at}, asked for ${book} (the company's time)`);

  const day = book.slice(0, 10);
  const calendar = await portal.GET("/api/v1/appointments", { params: { query: { from: day, to: day } } });
  if (calendar.data === undefined) {
    unexpected("read the calendar", calendar.response, calendar.error);
  } else {
    check(calendar.data.data.some((item) => item.id === appointment.id), "the booking is not in the calendar of its day");
  }

  // 401: a token the gateway never issued
  {
    const { error, response } = await clientWith("not-a-token").GET("/api/v1/calls");
    if (error?.status === 401) checkProblem(error, response, "401");
    else unexpected("401", response, error);
  }

  // 403: a viewer may read customers, not create them
  const viewerToken = await logIn(required("viewer-email", values["viewer-email"]), required("viewer-password", values["viewer-password"]));
  if (viewerToken !== undefined) {
    const { error, response } = await clientWith(viewerToken).POST("/api/v1/customers", { body: { name: "Not Allowed" } });
    if (error?.status === 403) {
      checkProblem(error, response, "403");
      const permission: Schemas["PermissionProblem"]["permission"] = error.permission;
      check(permission === "customers:write", `403: permission ${permission}, expected customers:write`);
    } else unexpected("403", response, error);
  }

  {
    const { error, response } = await portal.GET("/api/v1/customers/{customer_id}", {
      params: { path: { customer_id: MISSING_ID } },
    });
    if (error?.status === 404) checkProblem(error, response, "404");
    else unexpected("404", response, error);
  }

  // 409: the phone another customer has, and the slot another appointment holds
  {
    const { error, response } = await portal.POST("/api/v1/customers", { body: { name: "Someone Else", phone } });
    if (error?.status === 409) {
      checkProblem(error, response, "409 customer");
      const existing: number | undefined = error.existing_customer_id;
      const field: string | undefined = error.field;
      check(existing === customer.id, `409 customer: existing_customer_id ${existing}, expected ${customer.id}`);
      check(field === "phone", `409 customer: field ${field}, expected phone`);
    } else unexpected("409 customer", response, error);
  }
  {
    const { error, response } = await portal.POST("/api/v1/appointments", {
      body: { customer_id: customer.id, starts_at: book, duration_minutes: 30, title: "Again" },
    });
    if (error?.status === 409) {
      checkProblem(error, response, "409 booking");
      const conflicting: number | undefined = error.conflicting_appointment_id;
      const field: string | undefined = error.field;
      check(conflicting === appointment.id, `409 booking: conflicting_appointment_id ${conflicting}, expected ${appointment.id}`);
      check(field, `409 booking: field ${field}, expected the member that conflicts`);
    } else unexpected("409 booking", response, error);
  }

  {
    const { error, response } = await portal.POST("/api/v1/customers", { body: { name: "Bad Email", email: "not-an-email" } });
    if (error?.status === 422) {
      checkProblem(error, response, "422");
      const messages: Schemas["FieldErrors"] | undefined = error.errors["email"];
      check(
        Array.isArray(messages) && messages.length > 0 && messages.every((message) => typeof message === "string"),
        `422: errors.email is ${JSON.stringify(messages)}, expected a list of messages`,
      );
    } else unexpected("422", response, error);
  }

  // 304: the first page of the list again, with its ETag
  {
    const { data, response } = await portal.GET("/api/v1/calls", {
      params: { query: { status: "answered", limit: PAGE }, header: { "If-None-Match": etag ?? "" } },
    });
    check(response.status === 304 && data === undefined, `304: got ${response.status}`);
    check(response.headers.get("ETag") === etag, "304: not the same ETag");
  }

  // 429: billing's endpoint quota
  for (let attempt = 0; attempt < RATE_LIMIT_ATTEMPTS; attempt++) {
    const { error, response } = await portal.GET("/api/v1/billing/usage");
    if (response.status === 200) continue;
    if (error?.status === 429) {
      checkProblem(error, response, "429");
      const layer: Schemas["RateLimitProblem"]["layer"] = error.layer;
      const limit: number = error.limit;
      const window: number | undefined = error.window;
      const retryAfter: number | undefined = error.retry_after;
      const policy: string | undefined = error.policy;
      check(layer === "endpoint", `429: layer ${layer}`);
      check(limit > 0, `429: limit ${limit}`);
      check(window !== undefined && window > 0, `429: window ${window}`);
      check(policy, `429: policy ${policy}`);
      check(
        retryAfter !== undefined && retryAfter > 0 && String(retryAfter) === response.headers.get("Retry-After"),
        `429: retry_after ${retryAfter}, Retry-After ${response.headers.get("Retry-After")}`,
      );
    } else unexpected("429", response, error);
    return;
  }
  check(false, `429: none in ${RATE_LIMIT_ATTEMPTS} requests`);
}

await main();
console.log(mismatches.length ? `${mismatches.length} mismatch(es)` : "portal script: every check passed");
process.exit(mismatches.length ? 1 : 0);
