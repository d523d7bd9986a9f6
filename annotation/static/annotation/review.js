/* TagStudio review page: keyboard shortcuts and the add-tag box (htmx does the requests).
 *
 * 1-9, 0  toggle chip 1-9, 10      a  accept all suggestions at or above the threshold
 * Enter   submit and go to next    s  skip          u  undo the last review
 * /       focus the add-tag box (Enter adds the typed tag, Enter on an empty box submits, Esc leaves)
 */
(function () {
  "use strict";

  function reviewForm() { return document.getElementById("review-form"); }
  function chipBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll("#chips input[type=checkbox]"));
  }

  function renumber() {
    chipBoxes().forEach(function (box, index) {
      var key = box.parentElement.querySelector(".chip-key");
      if (key) { key.textContent = index < 9 ? String(index + 1) : (index === 9 ? "0" : ""); }
    });
  }

  function say(text, isError) {
    var box = document.getElementById("add-tag-msg");
    if (!box) { return; }
    box.textContent = text;
    box.className = isError ? "error" : "muted";
  }

  // htmx binds a swapped-in card's hx-post forms only when it settles (20 ms later, longer on a busy
  // machine); a key pressed before that would submit the form natively (a full page load that shows the
  // notice outside the card). Binding here first is idempotent and makes every shortcut go through htmx.
  function bound(element) {
    if (element && window.htmx) { window.htmx.process(element.form || element); }
    return element;
  }

  function submitReview() {
    var form = bound(reviewForm());
    if (form) { form.requestSubmit(); }
  }

  function clickButton(id) {
    var button = bound(document.getElementById(id));
    if (button) { button.click(); return true; }
    return false;
  }

  function acceptAbove() {
    var input = document.getElementById("accept-threshold");
    var threshold = input ? parseFloat(input.value) : NaN;
    if (isNaN(threshold)) { return; }
    document.querySelectorAll("#chips .chip[data-score]").forEach(function (chip) {
      if (parseFloat(chip.getAttribute("data-score")) >= threshold) {
        chip.querySelector("input[type=checkbox]").checked = true;
      }
    });
  }

  function addChip(name, isNew) {
    var existing = chipBoxes().filter(function (box) {
      return box.value.toLocaleLowerCase() === name.toLocaleLowerCase();
    });
    if (existing.length) {
      existing[0].checked = true;
      return;
    }
    var label = document.createElement("label");
    label.className = "chip added";
    var box = document.createElement("input");
    box.type = "checkbox";
    box.name = "tags";
    box.value = name;
    box.checked = true;
    var key = document.createElement("kbd");
    key.className = "chip-key";
    var text = document.createElement("span");
    text.className = "chip-name";
    text.textContent = name;
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = isNew ? "new tag" : "added";
    label.appendChild(box);
    label.appendChild(key);
    label.appendChild(text);
    label.appendChild(badge);
    document.getElementById("chips").appendChild(label);
    renumber();
  }

  function addTypedTag(input) {
    var name = input.value.trim();
    if (!name) { return; }
    var url = input.getAttribute("data-check-url") + "?name=" + encodeURIComponent(name);
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (result) {
        if (result.ok) {
          addChip(result.name, result.new);
          input.value = "";
          say(result.new ? result.message : "Added " + result.name + ".", false);
        } else {
          say(result.message, true);
        }
      })
      .catch(function (error) { say("Could not check the tag (" + error.message + ").", true); });
  }

  function isTextField(element) {
    if (!element) { return false; }
    var tag = element.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable) { return true; }
    return tag === "INPUT" && ["checkbox", "radio", "button", "submit"].indexOf(element.type) === -1;
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) { return; }
    var target = event.target;
    if (target && target.id === "add-tag") {
      if (event.key === "Enter") {
        event.preventDefault();
        if (target.value.trim()) { addTypedTag(target); } else { target.blur(); submitReview(); }
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (isTextField(target)) { return; }
    if (!document.getElementById("review-card")) { return; }
    var key = event.key;
    if (/^[0-9]$/.test(key)) {
      var box = chipBoxes()[key === "0" ? 9 : Number(key) - 1];
      if (box) { box.checked = !box.checked; }
      event.preventDefault();
    } else if (key === "Enter") {
      if (target && (target.tagName === "BUTTON" || target.tagName === "A")) { return; }  // its own action
      event.preventDefault();
      if (!reviewForm()) { clickButton("next-button"); } else { submitReview(); }
    } else if (key === "s") {
      if (clickButton("skip-button")) { event.preventDefault(); }
    } else if (key === "u") {
      if (clickButton("undo-button")) { event.preventDefault(); }
    } else if (key === "a") {
      acceptAbove();
      event.preventDefault();
    } else if (key === "/") {
      var input = document.getElementById("add-tag");
      if (input) { event.preventDefault(); input.focus(); }
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target && event.target.id === "accept-above") { acceptAbove(); }
  });

  document.body.addEventListener("htmx:afterSwap", renumber);
  document.body.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var card = document.getElementById("review-card");
    if (!card) { return; }
    var note = document.createElement("p");
    note.className = "notice error";
    note.setAttribute("role", "alert");
    note.textContent = status === 403
      ? "The server refused the request (403): your session may have ended. Reload the page."
      : "The request failed (HTTP " + status + "). Reload the page and try again.";
    card.insertBefore(note, card.firstChild);
  });
  renumber();
})();
