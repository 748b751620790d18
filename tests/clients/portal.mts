// A portal team's script, written against the types openapi-typescript generated from the
// gateway's /openapi.json (gateway.d.ts) and openapi-fetch, and nothing else.
//
//   GATEWAY_URL=... PORTAL_EMAIL=... PORTAL_PASSWORD=... node build/portal.mjs
//
// Logs in, lists with a filter and follows the cursor, creates and updates a customer,
// books, reads the calendar; then provokes 401, 403, 404, 409, 422, 429 and 304, reading
// each error's detail, request_id and extension members through the generated types.
import createClient from "openapi-fetch";
import type { components, paths } from "./gateway.js";

type Problem = components["schemas"]["Problem"];

const url = process.env.GATEWAY_URL ?? "";
const email = process.env.PORTAL_EMAIL ?? "";
const password = process.env.PORTAL_PASSWORD ?? "";

function check(condition: boolean, what: string, seen?: unknown): asserts condition {
  if (!condition) throw new Error(`${what}: ${JSON.stringify(seen)}`);
}

function expectProblem(error: Problem | undefined, status: number): Problem {
  check(error !== undefined && error.status === status && error.detail.length > 0
        && typeof error.request_id === "string", `a ${status} problem`, error);
  return error;
}

async function main(): Promise<void> {
  const anonymous = createClient<paths>({ baseUrl: url });
  const login = await anonymous.POST("/api/v1/auth/token", { body: { email, password } });
  check(login.data !== undefined, "log in", login.error);
  const headers = { Authorization: `Bearer ${login.data.access_token}` };
  const owner = createClient<paths>({ baseUrl: url, headers });

  // create customers, then list them with a filter, following the cursor
  const tag = Math.random().toString(36).slice(2, 8);
  const created: components["schemas"]["CustomerOut"][] = [];
  for (const n of [0, 1, 2]) {
    const made = await owner.POST("/api/v1/customers", {
      body: { name: `Portal ${tag} ${n}`, email: `portal-${tag}-${n}@example.com` } });
    check(made.data !== undefined, "create", made.error);
    created.push(made.data);
  }
  const seen: number[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await owner.GET("/api/v1/customers", {
      params: { query: { q: `Portal ${tag}`, limit: 2, ...(cursor ? { cursor } : {}) } } });
    check(page.data !== undefined, "list", page.error);
    seen.push(...page.data.data.map((customer) => customer.id));
    if (page.data.next_cursor === null) break;
    cursor = page.data.next_cursor;
  }
  check(seen.length === 3 && created.every((customer) => seen.includes(customer.id)), "all pages", seen);
  const first = created[0];
  check(first !== undefined, "a customer");

  // update one (a merge patch: null clears the e-mail)
  const updated = await owner.PATCH("/api/v1/customers/{customer_id}", {
    params: { path: { customer_id: first.id } }, body: { name: `Portal ${tag} renamed`, email: null } });
  check(updated.data !== undefined && updated.data.email === null, "update", updated.error);

  // book, then read the calendar around it
  const day = new Date(Date.now() + 7 * 86400_000).toISOString().slice(0, 10);
  const booked = await owner.POST("/api/v1/appointments", {
    body: { customer_id: first.id, starts_at: `${day}T10:00:00Z`, title: "First visit", duration_minutes: 30 } });
  check(booked.data !== undefined, "book", booked.error);
  const calendar = await owner.GET("/api/v1/appointments", { params: { query: { from: day, to: day } } });
  check(calendar.data !== undefined && calendar.data.data.map((a) => a.id).join() === String(booked.data.id),
        "calendar", calendar.data);

  // 401: a token the gateway did not issue
  const stranger = createClient<paths>({ baseUrl: url, headers: { Authorization: "Bearer not-a-token" } });
  expectProblem((await stranger.GET("/api/v1/customers")).error, 401);

  // 403: an API key of the read scope may not create; the problem names the permission
  const key = await owner.POST("/api/v1/settings/api-keys", { body: { name: "portal reader", scopes: ["read"] } });
  check(key.data !== undefined, "an API key", key.error);
  const reader = createClient<paths>({ baseUrl: url, headers: { "X-API-Key": key.data.key } });
  const refused = (await reader.POST("/api/v1/customers", { body: { name: "Nope" } })).error;
  expectProblem(refused, 403);
  check(refused !== undefined && "permission" in refused && refused.permission === "customers:write",
        "the permission", refused);

  // 404
  expectProblem((await owner.GET("/api/v1/customers/{customer_id}", {
    params: { path: { customer_id: 9_000_000_000 } } })).error, 404);

  // 409: the conflicting customer and the member
  const conflict = (await owner.POST("/api/v1/customers", {
    body: { name: "Twin", email: `portal-${tag}-1@example.com` } })).error;
  expectProblem(conflict, 409);
  check(conflict !== undefined && "existing_customer_id" in conflict
        && conflict.existing_customer_id === created[1]?.id && conflict.field === "email", "the conflict", conflict);

  // 422: member -> messages
  const invalid = (await owner.POST("/api/v1/customers", { body: { name: "", email: "not-an-email" } })).error;
  expectProblem(invalid, 422);
  check(invalid !== undefined && "errors" in invalid && invalid.errors !== undefined
        && Object.keys(invalid.errors).sort().join() === "email,name", "the errors", invalid);

  // 304: the ETag of a list, sent back
  const listed = await owner.GET("/api/v1/customers", { params: { query: { q: `Portal ${tag}` } } });
  const etag = listed.response.headers.get("ETag");
  check(etag !== null, "an ETag");
  const again = await owner.GET("/api/v1/customers", {
    params: { query: { q: `Portal ${tag}` }, header: { "If-None-Match": etag } } });
  check(again.response.status === 304 && again.data === undefined, "304", again.response.status);

  // 429: failed logins are throttled; the problem names the layer, limit and window
  const wrongLogin = () => anonymous.POST("/api/v1/auth/token", { body: { email, password: `wrong ${password}` } });
  let answer = await wrongLogin();
  for (let attempt = 1; attempt < 6; attempt++) {
    expectProblem(answer.error, 401);
    answer = await wrongLogin();
  }
  const throttled = answer.error;
  expectProblem(throttled, 429);
  check(throttled !== undefined && "layer" in throttled && throttled.layer === "login" && throttled.limit === 5
        && typeof throttled.window === "number" && (throttled.retry_after ?? 0) > 0, "the limit", throttled);
  console.log("portal: ok");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
