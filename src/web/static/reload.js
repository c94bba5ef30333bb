"use strict";
// The reload page asks for its reload's state every 2 seconds while it is pending and
// writes the answer in place; it stops once the reload is paid, failed or cancelled.
(function () {
  var card = document.getElementById("reload-card");
  if (!card || !card.dataset.poll) return;
  var url = card.dataset.poll;
  function money(cents) {
    var sign = cents < 0 ? "-" : "";
    var abs = Math.abs(cents);
    return sign + "$" + Math.floor(abs / 100) + "." + String(abs % 100).padStart(2, "0");
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (reload) {
        if (!reload) return setTimeout(poll, 2000);
        document.getElementById("reload-status").textContent = reload.message;
        document.getElementById("reload-state").textContent = reload.status;
        document.getElementById("reload-balance").textContent = money(reload.balance_cents);
        card.className = "card reload-status " + reload.status;
        if (reload.status === "pending") setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
