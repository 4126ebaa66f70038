// Keeps the teacher's list of students' requests current: every few seconds the server renders
// the list again and it replaces the old one if it changed. No library: the school may be offline.
(function () {
  "use strict";
  var box = document.getElementById("requests");
  if (!box) { return; }
  var url = box.getAttribute("data-poll");
  var seconds = parseFloat(box.getAttribute("data-seconds") || "3");
  var last = null;
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
      .then(function (r) {
        if (r.redirected) { window.location.reload(); return null; }  // signed out meanwhile
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== last) { box.innerHTML = html; last = html; }
      })
      .catch(function () { /* offline for a moment: try again on the next round */ })
      .then(function () { window.setTimeout(poll, seconds * 1000); });
  }
  window.setTimeout(poll, seconds * 1000);
}());
