"use strict";
// Everything user-supplied reaches the page through textContent or attribute values, never
// innerHTML, so a sample id such as "<img onerror=...>" stays text.
(function () {
  var body = document.body;
  var errors = 0;
  window.addEventListener("error", function () {
    errors += 1;
    body.setAttribute("data-js-errors", String(errors));
  });

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var thumbs = data.thumbs || {};

  // ---- thumbnails: shared by galleries, groups and the table, stored once in `thumbs`
  var images = { total: 0, loaded: 0, failed: 0 };
  function countImages() {
    body.setAttribute("data-images-total", String(images.total));
    body.setAttribute("data-images-loaded", String(images.loaded));
    body.setAttribute("data-images-failed", String(images.failed));
  }
  function attach(img) {
    var src = thumbs[img.getAttribute("data-t")];
    if (!src) { img.parentNode.classList.add("none"); img.remove(); return; }
    images.total += 1;
    img.addEventListener("load", function () {
      if (img.naturalWidth > 0) { images.loaded += 1; } else { images.failed += 1; }
      countImages();
    });
    img.addEventListener("error", function () { images.failed += 1; countImages(); });
    img.src = src;
  }
  Array.prototype.forEach.call(document.querySelectorAll("img[data-t]"), attach);
  countImages();

  // ---- findings table: sort, filter, render in pages
  var table = data.table;
  var tbody = document.querySelector("#findings-table tbody");
  var shown = document.getElementById("findings-shown");
  var more = document.getElementById("findings-more");
  var q = document.getElementById("f-text");
  var fCheck = document.getElementById("f-check");
  var fSplit = document.getElementById("f-split");
  var fFlagged = document.getElementById("f-flagged");
  var PAGE = 500;
  var limit = PAGE;
  var sortCol = 4, sortDir = 1;  // score, ascending: worst first
  var view = [];
  var C = table.columns;

  function option(select, value) {
    var o = document.createElement("option");
    o.value = value; o.textContent = value;
    select.appendChild(o);
  }
  table.checks.forEach(function (c) { option(fCheck, c); });
  table.splits.forEach(function (s) { option(fSplit, s); });

  function compare(a, b) {
    var x = a[sortCol], y = b[sortCol];
    if (x === y) { return 0; }
    if (x === null) { return 1; }   // missing values last in either direction
    if (y === null) { return -1; }
    return (x < y ? -1 : 1) * sortDir;
  }
  function filter() {
    var text = q.value.trim().toLowerCase();
    var check = fCheck.value, split = fSplit.value, flagged = fFlagged.checked;
    view = table.rows.filter(function (r) {
      if (check && r[3] !== check) { return false; }
      if (split && r[1] !== split) { return false; }
      if (flagged && !r[5]) { return false; }
      if (text) {
        var hay = (r[0] + " " + (r[2] || "") + " " + (r[6] || "")).toLowerCase();
        if (hay.indexOf(text) < 0) { return false; }
      }
      return true;
    });
    view.sort(compare);
    limit = PAGE;
    render();
  }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function fmt(v, digits) { return v === null ? "" : v.toFixed(digits); }
  function render() {
    var frag = document.createDocumentFragment();
    var n = Math.min(limit, view.length);
    for (var i = 0; i < n; i++) {
      var r = view[i];
      var tr = document.createElement("tr");
      if (r[5]) { tr.className = "issue"; }
      var td = cell(tr, "", "th");
      if (r[8] && thumbs[r[8]]) {
        var img = document.createElement("img");
        img.setAttribute("data-t", r[8]); img.alt = "";
        td.appendChild(img); attach(img);
      }
      cell(tr, r[0], "id");
      cell(tr, r[1] === null ? "" : r[1], "u");
      cell(tr, r[2] === null ? "" : r[2], "u");
      cell(tr, r[3]);
      cell(tr, fmt(r[4], 4), "num");
      cell(tr, r[5] ? "yes" : "");
      cell(tr, r[6] === null ? "" : r[6], "u");
      cell(tr, fmt(r[7], 3), "num");
      frag.appendChild(tr);
    }
    tbody.textContent = "";
    tbody.appendChild(frag);
    shown.textContent = "showing " + n + " of " + view.length + " matching rows";
    more.hidden = n >= view.length;
    countImages();
  }
  Array.prototype.forEach.call(document.querySelectorAll("#findings-table th[data-col]"), function (th) {
    th.addEventListener("click", function () {
      var col = Number(th.getAttribute("data-col"));
      sortDir = col === sortCol ? -sortDir : 1;
      sortCol = col;
      Array.prototype.forEach.call(th.parentNode.children, function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(sortDir > 0 ? "asc" : "desc");
      view.sort(compare);
      render();
    });
  });
  [q, fCheck, fSplit, fFlagged].forEach(function (el) { el.addEventListener("input", filter); });
  more.addEventListener("click", function () { limit += PAGE; render(); });
  if (C.length !== 9) { throw new Error("unexpected table columns"); }
  filter();
  body.setAttribute("data-table-rows", String(table.rows.length));
  body.setAttribute("data-ready", "1");
})();
