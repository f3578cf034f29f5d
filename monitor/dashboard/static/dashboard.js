// Live updates for the Gates and Events pages, over server-sent events.
// An element with data-live="/live/..." and data-after="ID" opens a stream that starts
// after update ID (the one the page was rendered at). The browser's own reconnects
// send Last-Event-ID; when the stream is closed for good (e.g. a restart), it is
// opened again from the last id seen. "scan" adds a row, "gates" redraws the grid,
// "reload" (too much was missed) reloads the page.
(function () {
  "use strict";
  var MAX_ROWS = 200;

  function status(up) {
    document.querySelectorAll("[data-live-status]").forEach(function (el) {
      el.classList.toggle("down", !up);
    });
  }

  function open(el) {
    var url = el.dataset.live;
    var source = new EventSource(url + (url.indexOf("?") < 0 ? "?" : "&") + "after=" + el.dataset.after);
    function seen(event) { if (event.lastEventId) { el.dataset.after = event.lastEventId; } }
    source.onopen = function () { status(true); };
    source.onmessage = seen;
    source.addEventListener("scan", function (event) {
      seen(event);
      var empty = el.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      el.insertAdjacentHTML("afterbegin", event.data);
      var row = el.firstElementChild;
      if (row) { row.classList.add("fresh"); }
      var rows = el.querySelectorAll("tr[data-id]");
      for (var i = MAX_ROWS; i < rows.length; i++) { rows[i].remove(); }
    });
    source.addEventListener("gates", function (event) {
      seen(event);
      el.innerHTML = event.data;
    });
    source.addEventListener("reload", function () { source.close(); location.reload(); });
    source.onerror = function () {
      status(false);
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(function () { open(el); }, 3000);
      }
    };
  }

  document.querySelectorAll("[data-live]").forEach(open);
})();
