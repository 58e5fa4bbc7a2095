// Oban dashboard: progressive enhancements only. Every page and action works without it.
(function () {
  "use strict";
  var body = document.body;
  var every = Number(body.dataset.refresh || 0);
  var key = "oban-web-live";
  var live = localStorage.getItem(key) !== "off";
  var toggle = document.getElementById("live-toggle");

  function show() {
    if (!toggle) return;
    toggle.textContent = live ? "Pause refresh" : "Resume refresh";
    toggle.setAttribute("aria-pressed", String(!live));
    body.classList.toggle("paused", !live);
  }
  if (toggle) {
    toggle.addEventListener("click", function () {
      live = !live;
      localStorage.setItem(key, live ? "on" : "off");
      show();
    });
  }
  show();

  // Replaces each [data-live] element with its fresh copy from the same URL, unless the
  // person is in the middle of something (a selection, a focused field, an opened form).
  function busy() {
    if (document.querySelector("input[name=ids]:checked")) return true;
    if (document.querySelector("[data-live] details[open]")) return true;
    var active = document.activeElement;
    return !!(active && active.matches("input, select, textarea"));
  }
  function tick() {
    if (!live || document.hidden || busy()) return;
    fetch(location.href, { headers: { "x-oban-live": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (!text || busy()) return;
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var next = fresh.getElementById(old.id);
          if (next) old.replaceWith(document.importNode(next, true));
        });
        body.dataset.refreshedAt = String(Date.now());
      })
      .catch(function () {});
  }
  if (every > 0) setInterval(tick, every * 1000);

  // Select every job of the page.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (!all) return;
    document.querySelectorAll("input[name=ids]").forEach(function (box) {
      box.checked = all.checked;
    });
  });

  // Destructive actions ask first.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
