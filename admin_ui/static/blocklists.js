// While a blocklist update runs, shows its phase and count every second; reloads the page when
// it ends so that the sources show their new state. No library: the school may be offline.
(function () {
  "use strict";
  var box = document.getElementById("update");
  if (!box || !box.hasAttribute("data-running")) { return; }
  var url = box.getAttribute("data-poll");
  var state = document.getElementById("update-state");
  var bar = document.getElementById("update-bar");
  var button = document.getElementById("update-now");
  var prefix = state.getAttribute("data-updating");  // "Updating…" in the page's language
  bar.hidden = false;
  if (button) { button.disabled = true; }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (job === null) { return; }
        if (!job.running) { window.location.reload(); return; }
        state.textContent = prefix + " " + job.phase +
          (job.count ? " · " + job.count.toLocaleString() : "") + " · " + job.seconds + " s";
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 500);
}());
