// The console's live part: every few seconds, the server-rendered panels are fetched from
// this gateway and swapped in. No library, no other host.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var panels = document.getElementById("panels");
  if (!live || !panels) { return; }
  var seconds = parseInt(live.getAttribute("data-poll-seconds"), 10) || 5;

  function refresh() {
    fetch("/gateway/console/panels", {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (response.status === 401) {
          document.getElementById("session-ended").classList.remove("hidden");
          return null;   // stop polling: nothing will come back without a new login
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text().then(function (html) {
          // an open <details> (a kept email being read) stays open across refreshes
          var open = Array.prototype.map.call(panels.querySelectorAll("details[open] summary"),
                                              function (s) { return s.textContent; });
          panels.innerHTML = html;
          Array.prototype.forEach.call(panels.querySelectorAll("details summary"), function (s) {
            if (open.indexOf(s.textContent) >= 0) { s.parentNode.open = true; }
          });
          live.textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
          live.classList.remove("stale");
          window.setTimeout(refresh, seconds * 1000);
        });
      })
      .catch(function () {
        live.classList.add("stale");   // the gateway did not answer: keep trying
        window.setTimeout(refresh, seconds * 1000);
      });
  }
  window.setTimeout(refresh, seconds * 1000);
})();
