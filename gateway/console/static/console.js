// The console's only script: select-all, confirm before bulk replay, opt-in auto-refresh.
(function () {
  "use strict";
  var all = document.getElementById("all-boxes");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[type=checkbox][name=event]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (e) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
  var refresh = document.getElementById("autorefresh");
  if (refresh) {
    refresh.checked = window.localStorage.getItem("console.autorefresh") === "1";
    var timer = null;
    var arm = function () {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (refresh.checked) { timer = window.setTimeout(function () { window.location.reload(); }, 10000); }
    };
    refresh.addEventListener("change", function () {
      window.localStorage.setItem("console.autorefresh", refresh.checked ? "1" : "0");
      arm();
    });
    arm();
  }
})();
