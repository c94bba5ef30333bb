// Live calls: keeps /app/live up to date from the server's event stream. Lines are keyed
// by call and seq, so a line sent again (longer) replaces the one shown. Each call's
// "Send a note" and "Take this call" forms are sent in the background (the page keeps
// its stream); without script they post and come back to the page.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.EventSource) return;
  var empty = document.getElementById("no-live");
  var csrf = root.getAttribute("data-csrf");
  var maxNote = root.getAttribute("data-max-note") || "300";

  function hidden(name, value) {
    var input = el("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  function controls(sid) {
    var box = el("div", "live-controls");
    var note = el("form", "live-note");
    note.method = "post";
    note.action = "/app/live/" + sid + "/note";
    note.appendChild(hidden("csrf_token", csrf));
    var label = el("label", "", "Note for Rachel to say");
    var text = el("input");
    text.name = "text";
    text.required = true;
    text.maxLength = Number(maxNote);
    text.autocomplete = "off";
    text.placeholder = "e.g. We can fit you in at 3 today";
    label.appendChild(text);
    note.appendChild(label);
    note.appendChild(el("button", "toggle", "Send a note"));
    var take = el("form", "live-takeover");
    take.method = "post";
    take.action = "/app/live/" + sid + "/takeover";
    take.appendChild(hidden("csrf_token", csrf));
    take.appendChild(el("button", "primary", "Take this call"));
    box.appendChild(take);
    box.appendChild(note);
    return box;
  }

  function say(card, text, ok) {
    var status = card.querySelector(".live-status");
    if (!status) {
      status = el("p", "live-status");
      status.setAttribute("role", "status");
      card.querySelector(".live-controls").appendChild(status);
    }
    status.className = "live-status " + (ok ? "notice" : "alert");
    status.textContent = text;
  }

  // Sends a control's form to the JSON API and says what happened in the call's card.
  root.addEventListener("submit", function (e) {
    var form = e.target;
    var card = form.closest(".live-call");
    if (!card || !window.fetch) return;
    e.preventDefault();
    var sid = card.getAttribute("data-sid");
    var taking = form.classList.contains("live-takeover");
    var body = taking ? null : JSON.stringify({ text: form.elements.text.value });
    var headers = { "X-CSRF-Token": csrf };
    if (body) headers["Content-Type"] = "application/json";
    var button = form.querySelector("button");
    button.disabled = true;
    fetch("/api/live/" + encodeURIComponent(sid) + (taking ? "/takeover" : "/note"), {
      method: "POST", headers: headers, body: body, credentials: "same-origin"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) {
          say(card, taking ? "Rachel is handing the call to you now: your phone will ring in a moment."
                           : "Your note will be said at the agent's next turn.", true);
          if (!taking) form.reset();
        } else {
          say(card, data.error || "That did not work; please try again.", false);
        }
      });
    }).catch(function () {
      say(card, "The server could not be reached; please try again.", false);
    }).then(function () { button.disabled = false; });
  });

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
    card.appendChild(controls(sid));
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
