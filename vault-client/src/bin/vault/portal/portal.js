// The resident's portal works without this script; it only adds comfort:
// a changed filter on the data tracker applies at once.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var filters = document.querySelector("form.filters");
  if (filters) {
    filters.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { filters.submit(); });
    });
  }
});
