(function () {
  var input = document.getElementById('filter');
  var shown = document.getElementById('shown');
  if (!input || !shown) return;
  var maps = document.querySelectorAll('figure.map');
  function apply() {
    var q = input.value.trim().toLowerCase(), n = 0;
    for (var i = 0; i < maps.length; i++) {
      var hit = maps[i].getAttribute('data-search').indexOf(q) >= 0;
      maps[i].hidden = !hit;
      if (hit) n++;
    }
    shown.textContent = n + ' of ' + maps.length + ' charts shown';
  }
  input.addEventListener('input', apply);
  apply();
})();
