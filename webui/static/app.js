// Lapse web UI: countdowns, copy buttons, and the address of pages that a
// form rendered. Served as a file: the Content-Security-Policy allows no
// inline script.
'use strict';
(function () {
  function human(ms) {
    if (ms <= 0) { return 'expired'; }
    var s = Math.round(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    function two(a, ua, b, ub) { return b === 0 ? a + ua : a + ua + ' ' + b + ub; }
    if (h >= 48) { return two(Math.floor(h / 24), 'd', h % 24, 'h'); }
    if (h > 0) { return two(h, 'h', m, 'm'); }
    if (m > 0) { return two(m, 'm', sec, 's'); }
    return sec + 's';
  }

  // Countdowns count from the seconds left when the server rendered the
  // page, so that a wrong clock on this machine does not matter.
  var loaded = Date.now();
  var timers = Array.prototype.slice.call(document.querySelectorAll('time.countdown[data-left]'));
  function tick() {
    var elapsed = Date.now() - loaded;
    timers.forEach(function (el) {
      var left = Number(el.getAttribute('data-left')) * 1000 - elapsed;
      el.textContent = human(left);
      el.classList.toggle('expired', left <= 0);
      el.classList.toggle('soon', left > 0 && left < 5 * 60 * 1000);
    });
  }
  if (timers.length > 0) {
    tick();
    setInterval(tick, 1000);
  }

  // A page rendered by a form (credentials shown once, say) takes the
  // address of what it shows, so that a reload does not send the form again.
  var replace = document.body.getAttribute('data-replace-url');
  if (replace && replace.charAt(0) === '/' && replace.charAt(1) !== '/') {
    history.replaceState(null, '', replace);
  }

  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    b.addEventListener('click', function () {
      var src = document.getElementById(b.getAttribute('data-copy'));
      if (!src || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(src.textContent).then(function () { b.textContent = 'Copied'; });
    });
  });
})();
