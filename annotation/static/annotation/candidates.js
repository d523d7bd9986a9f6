/* TagStudio candidate grid: keyboard selection and "select all with score >= s" (forms do the requests).
 *
 * j / k        move to the next / previous row
 * x            select or unselect the current row; shift+x selects every row from the last one toggled
 *              to the current one (a click on a checkbox with shift does the same)
 * a / r        accept / reject the tag for the selected rows
 * u            undo the latest bulk action listed (when it is yours)
 */
(function () {
  "use strict";

  var rows = Array.prototype.slice.call(document.querySelectorAll("#candidates tbody tr[data-sku]"));
  var current = -1;
  var anchor = -1;

  function box(row) { return row.querySelector("input.pick"); }

  function selected() {
    return rows.filter(function (row) { return box(row).checked; });
  }

  function refresh() {
    var count = selected().length;
    document.getElementById("selection-count").textContent = count + " selected";
    rows.forEach(function (row) { row.classList.toggle("picked", box(row).checked); });
  }

  function move(index) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("current", i === current); });
    rows[current].scrollIntoView({ block: "nearest" });
  }

  function selectRange(from, to, value) {
    var lo = Math.min(from, to), hi = Math.max(from, to);
    for (var i = lo; i <= hi; i++) { box(rows[i]).checked = value; }
  }

  function toggle(index, range) {
    if (index < 0) { return; }
    if (range && anchor >= 0) {
      selectRange(anchor, index, true);
    } else {
      box(rows[index]).checked = !box(rows[index]).checked;
    }
    anchor = index;
    refresh();
  }

  rows.forEach(function (row, index) {
    box(row).addEventListener("click", function (event) {
      if (event.shiftKey && anchor >= 0) {
        selectRange(anchor, index, true);
      }
      anchor = index;
      move(index);
      refresh();
    });
  });

  var decideForm = document.getElementById("decide-form");
  decideForm.addEventListener("submit", function (event) {
    var skus = selected().map(function (row) { return row.dataset.sku; });
    if (!skus.length) {
      event.preventDefault();
      document.getElementById("selection-count").textContent = "Select at least one product first.";
      return;
    }
    document.getElementById("selected-products").value = skus.join("\n");
  });

  function submitDecision(decision) {
    var button = document.getElementById(decision === "accept" ? "accept-selected" : "reject-selected");
    if (decideForm.requestSubmit) { decideForm.requestSubmit(button); } else { button.click(); }
  }

  // "Select all with score >= s on this filter": count first, then offer to decide that many.
  var countButton = document.getElementById("count-above");
  var aboveInput = document.getElementById("above-score");
  var filterForm = document.getElementById("filter-decide-form");
  function hideAbove() {
    document.getElementById("accept-above").hidden = true;
    document.getElementById("reject-above").hidden = true;
    document.getElementById("above-count").textContent = "";
  }
  aboveInput.addEventListener("input", hideAbove);
  countButton.addEventListener("click", function () {
    var params = new URLSearchParams(new FormData(filterForm));
    ["csrfmiddlewaretoken", "by_filter", "filter_query"].forEach(function (key) { params.delete(key); });
    var out = document.getElementById("above-count");
    out.textContent = "Counting…";
    fetch(countButton.dataset.countUrl + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
      .then(function (result) {
        if (!result[0]) { out.textContent = "The filter is invalid."; return; }
        var n = result[1].count;
        out.textContent = n + " product" + (n === 1 ? "" : "s") + " match";
        var accept = document.getElementById("accept-above");
        var reject = document.getElementById("reject-above");
        accept.textContent = "Accept all " + n;
        reject.textContent = "Reject all " + n;
        accept.hidden = reject.hidden = n === 0;
      })
      .catch(function () { out.textContent = "Could not count; try again."; });
  });
  aboveInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); countButton.click(); }
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (target && (target.tagName === "INPUT" && target.type !== "checkbox" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
      return;
    }
    var key = event.key.toLowerCase();
    if (key === "j") { move(current + 1); }
    else if (key === "k") { move(current <= 0 ? 0 : current - 1); }
    else if (key === "x") { if (current < 0) { move(0); } toggle(current, event.shiftKey); }
    else if (key === "a") { submitDecision("accept"); }
    else if (key === "r") { submitDecision("reject"); }
    else if (key === "u") {
      var undo = document.querySelector("#bulk-actions button.undo");
      if (undo) { undo.click(); } else { return; }
    } else { return; }
    event.preventDefault();
  });

  refresh();
})();
