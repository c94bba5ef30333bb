// RinglyPro app shell: registers the service worker and guesses the signup time zone.
"use strict";
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(function () {});
}
document.addEventListener("DOMContentLoaded", function () {
  var zone = document.querySelector('select[name="timezone"][data-guess-zone="yes"]');
  if (!zone || !window.Intl) return;
  var guess = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!guess) return;
  var found = Array.prototype.some.call(zone.options, function (o) { return o.value === guess; });
  if (!found) {
    var option = document.createElement("option");
    option.value = guess;
    option.textContent = guess;
    zone.appendChild(option);
  }
  zone.value = guess;
});
