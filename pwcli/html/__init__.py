"""The HTML report (``--format html``): one self-contained page, the run's data inline and the
renderer (``assets/report.js``) that ``pwcli ui`` uses too."""
