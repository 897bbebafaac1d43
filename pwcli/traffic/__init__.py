"""Traffic from anywhere: pcap, pcapng and HAR captures, and one request from the command line,
made into pwcli traces."""
