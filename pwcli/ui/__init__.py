"""``pwcli ui``: a local web app to compose traffic, run it through a plugin and watch the timeline
fill, drawn by the HTML report's renderer."""
