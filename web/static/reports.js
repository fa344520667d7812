// The dashboard's PDF: fetched here so that the page can say it is being made (a long
// period takes a moment), then saved. Without this script the form downloads it as usual.
(function () {
  "use strict";
  var form = document.getElementById("report-pdf");
  var status = document.getElementById("report-status");
  if (!form || !status || !window.fetch || !window.URL) return;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button");
    var query = new URLSearchParams(new FormData(form)).toString();
    button.disabled = true;
    status.textContent = status.dataset.making;
    fetch(form.action + "?" + query, { credentials: "same-origin" })
      .then(function (answer) {
        if (!answer.ok) throw new Error(String(answer.status));
        var name = /filename="([^"]+)"/.exec(answer.headers.get("Content-Disposition") || "");
        return answer.blob().then(function (blob) { return [blob, name ? name[1] : "report.pdf"]; });
      })
      .then(function (got) {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(got[0]);
        link.download = got[1];
        document.body.appendChild(link);
        link.click();
        link.remove();
        status.textContent = status.dataset.ready;
        status.dataset.state = "ready";
      })
      .catch(function () {
        status.textContent = status.dataset.failed;
        status.dataset.state = "failed";
      })
      .finally(function () { button.disabled = false; });
  });
})();
