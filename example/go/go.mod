module pwcli/example/go_wasip1

go 1.24
