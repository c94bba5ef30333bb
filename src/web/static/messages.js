// A conversation (/app/messages/{contact}): texts received while the page is open join the
// thread at once, from the tenant's feed of received texts. A text already shown is skipped.
(function () {
  "use strict";
  var thread = document.getElementById("thread");
  if (!thread || !window.EventSource) return;
  var contact = Number(thread.getAttribute("data-contact"));

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var feed = new EventSource("/app/messages/events");
  feed.addEventListener("ready", function () { thread.setAttribute("data-live", "on"); });
  feed.addEventListener("text", function (e) {
    var text;
    try { text = JSON.parse(e.data); } catch (_) { return; }
    if (text.contact_id !== contact || thread.querySelector('[data-id="' + text.message_id + '"]')) return;
    var li = el("li", "in");
    li.setAttribute("data-id", String(text.message_id));
    li.appendChild(el("p", "", text.body));
    li.appendChild(el("span", "when", new Date(text.at).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })));
    li.appendChild(document.createTextNode(" "));
    var pill = el("span", "pill", "received");
    pill.setAttribute("data-status", "received");
    li.appendChild(pill);
    thread.appendChild(li);
    var empty = document.getElementById("no-messages");
    if (empty) empty.hidden = true;
  });
})();
