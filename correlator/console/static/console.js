// The console's only script: refresh the element marked data-refresh from its URL every
// data-seconds, so the live list and the wall update without reloading the page. No inline
// script anywhere (the Content-Security-Policy forbids it); without JavaScript the wall falls
// back to a meta refresh and the list to the browser's reload.
"use strict";
(function () {
  function start(el) {
    var url = el.getAttribute("data-refresh");
    var seconds = parseInt(el.getAttribute("data-seconds") || "5", 10);
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (resp.status === 401) { window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname + window.location.search)); return null; }
          return resp.ok ? resp.text() : null;
        })
        .then(function (text) {
          if (text !== null) {
            el.innerHTML = text;
            var n = parseInt(el.getAttribute("data-refreshed") || "0", 10) + 1;
            el.setAttribute("data-refreshed", String(n));
            var stamp = document.getElementById("updated");
            if (stamp) { stamp.textContent = "Last update " + new Date().toISOString().slice(11, 19) + "Z."; }
          }
        })
        .catch(function () { /* the daemon is restarting: try again at the next tick */ })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var els = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < els.length; i++) { start(els[i]); }
  });
})();
