// Quiver dashboard: live updates. The page is complete as served; this script swaps in the
// <main> the coordinator sends over server-sent events each time it changes
// (see coordinator/src/dashboard/events.rs). No framework, nothing fetched from elsewhere.
(function () {
  "use strict";
  var path = document.body.getAttribute("data-events");
  var main = document.getElementById("live");
  var status = document.getElementById("live-status");
  if (!path || !main || !window.EventSource) {
    return;
  }
  function show(text, cls) {
    if (status) {
      status.textContent = text;
      status.className = "live " + cls;
    }
  }
  show("connecting…", "off");
  var source = new EventSource(path);
  source.addEventListener("open", function () { show("live", "on"); });
  source.addEventListener("main", function (e) {
    main.innerHTML = e.data;
    show("live", "on");
  });
  source.addEventListener("gone", function () {
    show("no longer kept by the coordinator", "off");
    source.close();
  });
  source.addEventListener("error", function () { show("reconnecting…", "off"); });
})();
