// Refreshes the page's content while it is visible: fetches the same URL
// with `X-Hosted-Fragment: 1`, for which the dashboard sends only the
// inside of <main>, and swaps it in. Pages work without this script; it
// only saves the reload.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh"), 10) || 2000;
  var main = document.getElementById("content");
  var live = document.getElementById("live");
  var busy = false;
  function typing() {
    var el = document.activeElement;
    return el && main.contains(el) && (el.tagName === "INPUT" || el.tagName === "TEXTAREA");
  }
  function refresh() {
    if (busy || document.hidden || typing()) return;
    busy = true;
    fetch(location.href, { headers: { "X-Hosted-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status + " " + response.statusText);
        return response.text();
      })
      .then(function (html) {
        main.innerHTML = html;
        if (live) {
          live.textContent = "Live · updated " + new Date().toLocaleTimeString();
          live.className = "";
        }
      })
      .catch(function (error) {
        if (live) {
          live.textContent = "Not updated: " + error.message;
          live.className = "stale";
        }
      })
      .finally(function () { busy = false; });
  }
  // After an action the address names its notice: shown once, not on
  // every refresh.
  if (/[?&]notice=/.test(location.search)) {
    var url = new URL(location.href);
    url.searchParams.delete("notice");
    history.replaceState(null, "", url.pathname + url.search);
  }
  setInterval(refresh, every);
})();
