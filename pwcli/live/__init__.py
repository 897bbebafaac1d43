"""Live: the plugin in real Envoy in front of a real upstream (``pwcli proxy``), what passes shown
stream by stream and recorded as a trace that ``pwcli replay`` replays."""
