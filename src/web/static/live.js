// Live calls: keeps /app/live up to date from the server's event stream. Lines are keyed
// by call and seq, so a line sent again (longer) replaces the one shown.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.EventSource) return;
  var empty = document.getElementById("no-live");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function callCard(sid, caller) {
    var card = document.getElementById("live-" + sid);
    if (card) return card;
    card = el("section", "card live-call");
    card.id = "live-" + sid;
    card.setAttribute("data-sid", sid);
    card.appendChild(el("h2", "", caller || "Caller"));
    var slots = el("dl", "slots");
    [["Wants", "intent"], ["Name", "name"], ["Phone", "phone"]].forEach(function (s) {
      slots.appendChild(el("dt", "", s[0]));
      var dd = el("dd", "", "…");
      dd.setAttribute("data-slot", s[1]);
      slots.appendChild(dd);
    });
    card.appendChild(slots);
    card.appendChild(el("ol", "transcript"));
    root.insertBefore(card, empty);
    empty.hidden = true;
    return card;
  }

  function setSlots(card, slots) {
    ["intent", "name", "phone"].forEach(function (key) {
      var dd = card.querySelector('[data-slot="' + key + '"]');
      if (dd && slots[key] !== null && slots[key] !== undefined) dd.textContent = String(slots[key]);
    });
  }

  function putLine(card, line) {
    var list = card.querySelector("ol.transcript");
    if (!line.text) return;
    var existing = list.querySelector('[data-seq="' + line.seq + '"]');
    var item = el("li", "bubble " + line.speaker);
    item.setAttribute("data-seq", line.seq);
    item.appendChild(el("p", "", line.text));
    if (existing) { list.replaceChild(item, existing); return; }
    var after = null;
    Array.prototype.forEach.call(list.children, function (li) {
      if (after === null && Number(li.getAttribute("data-seq")) > line.seq) after = li;
    });
    list.insertBefore(item, after);
  }

  function refreshEmpty() {
    empty.hidden = root.querySelectorAll(".live-call").length > 0;
  }

  var source = new EventSource(root.getAttribute("data-events"));
  source.addEventListener("snapshot", function (e) {
    var data = JSON.parse(e.data);
    var keep = {};
    data.calls.forEach(function (call) {
      keep[call.call_sid] = true;
      var card = callCard(call.call_sid, call.contact_name || call.from_number);
      setSlots(card, call.slots);
      call.lines.forEach(function (line) { putLine(card, line); });
    });
    Array.prototype.forEach.call(root.querySelectorAll(".live-call"), function (card) {
      if (!keep[card.getAttribute("data-sid")]) card.remove();
    });
    refreshEmpty();
  });
  source.addEventListener("turn", function (e) {
    var turn = JSON.parse(e.data);
    var card = callCard(turn.call_sid, turn.phone);
    setSlots(card, turn);
    putLine(card, turn);
  });
  source.addEventListener("ended", function (e) {
    var ended = JSON.parse(e.data);
    var card = document.getElementById("live-" + ended.call_sid);
    if (card) card.remove();
    refreshEmpty();
  });
})();
