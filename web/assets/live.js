// The Today page's live feed: each `detection` event from /api/v1/events becomes the
// first item of the list #live (at most 20 kept). No inline script: the CSP forbids it.
(function () {
  "use strict";
  var list = document.getElementById("live");
  if (!list || typeof EventSource === "undefined") {
    return;
  }
  var source = new EventSource("/api/v1/events");
  source.addEventListener("detection", function (event) {
    var d;
    try {
      d = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/species/" + encodeURIComponent(d.tag_value);
    link.textContent = d.tag_value;
    var when = document.createElement("time");
    when.dateTime = d.time;
    when.textContent = new Date(d.time).toLocaleTimeString();
    item.appendChild(when);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(link);
    item.appendChild(document.createTextNode(" " + Number(d.confidence).toFixed(2)));
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 20) {
      list.removeChild(list.lastChild);
    }
    var empty = document.getElementById("live-empty");
    if (empty) {
      empty.remove();
    }
  });
})();
