/* TagStudio review page: keyboard shortcuts and the add-tag box (htmx does the requests).
 *
 * 1-9, 0, q w e r t y i o p d f g h j k l z x c v b m   toggle the shown chips in order (key on the chip)
 * a       accept all suggestions at or above the threshold
 * Enter   submit and go to next (once: a second Enter while the submit is on its way is ignored)
 * n       on the "no tag applies" confirm step: save with zero tags
 * s  skip          u  undo the last review
 * /       focus the add-tag box (Enter adds the typed tag and gives focus back to the card, Enter on an
 *         empty box submits, Esc leaves)
 * Chips behind "more" get keys, and count as shown (rejected when left unchecked), once "more" is open.
 */
(function () {
  "use strict";

  // The same sequence as annotation.selectors.review.CHIP_KEYS (letters the page's actions do not use).
  var CHIP_KEYS = "1234567890qwertyiopdfghjklzxcvbm";
  var submitting = false;

  function reviewForm() { return document.getElementById("review-form"); }
  function chipBoxes() {
    // The shown chips in page order: the card's, then those behind "more" once it is open.
    var boxes = Array.prototype.slice.call(document.querySelectorAll("#chips input[type=checkbox]"));
    var more = document.getElementById("more-chips");
    if (more && more.open) {
      boxes = boxes.concat(Array.prototype.slice.call(more.querySelectorAll("input[type=checkbox]")));
    }
    return boxes;
  }

  function renumber() {
    document.querySelectorAll("#more-chips .chip-key").forEach(function (key) { key.textContent = ""; });
    chipBoxes().forEach(function (box, index) {
      var key = box.parentElement.querySelector(".chip-key");
      if (key) { key.textContent = index < CHIP_KEYS.length ? CHIP_KEYS.charAt(index) : ""; }
    });
  }

  function moreToggled() {
    var more = document.getElementById("more-chips");
    if (!more) { return; }
    more.querySelectorAll("input.more-shown").forEach(function (input) { input.disabled = !more.open; });
    renumber();
  }

  function focusCard() {
    var card = document.getElementById("review-card");
    if (card) { card.focus({ preventScroll: true }); }
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
    if (submitting) { return; }  // one submit per card: the second Enter of a double press is dropped
    var form = bound(reviewForm());
    if (form) {
      submitting = true;
      // htmx clears the flag when the answer arrives; this only frees a submit htmx never sent.
      window.setTimeout(function () { submitting = false; }, 5000);
      form.requestSubmit();
    }
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
    // Focus goes back to the card at once: the next key is a shortcut, never text typed into the box.
    focusCard();
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
    // The box keeps a refused name (press / to fix it); an added one is cleared above.
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
        focusCard();
      }
      return;
    }
    if (isTextField(target)) { return; }
    if (!document.getElementById("review-card")) { return; }
    var key = event.key;
    var chipIndex = key.length === 1 ? CHIP_KEYS.indexOf(key) : -1;
    if (chipIndex !== -1 && chipIndex < chipBoxes().length) {
      var box = chipBoxes()[chipIndex];
      box.checked = !box.checked;
      event.preventDefault();
    } else if (/^[0-9]$/.test(key)) {
      event.preventDefault();  // a digit with no chip: nothing to toggle
    } else if (key === "n") {
      if (clickButton("no-tag-button")) { event.preventDefault(); }
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
  // <details> "toggle" does not bubble: listen in the capture phase.
  document.addEventListener("toggle", function (event) {
    if (event.target && event.target.id === "more-chips") { moreToggled(); }
  }, true);

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "review-form") { submitting = true; }
  });
  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "review-form") { submitting = false; }
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    submitting = false;
    renumber();
    moreToggled();
  });
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

// A chip's reason, in the title: hovering or focusing a chip lights up the title words that mention its tag.
(function () {
  "use strict";
  function light(event, on) {
    var chip = event.target.closest && event.target.closest(".chip[data-tag-id]");
    if (!chip) { return; }
    var marks = document.querySelectorAll('#product-title mark[data-tags~="' + chip.getAttribute("data-tag-id") + '"]');
    for (var i = 0; i < marks.length; i++) { marks[i].classList.toggle("lit", on); }
  }
  document.addEventListener("mouseover", function (event) { light(event, true); });
  document.addEventListener("mouseout", function (event) { light(event, false); });
  document.addEventListener("focusin", function (event) { light(event, true); });
  document.addEventListener("focusout", function (event) { light(event, false); });
})();
