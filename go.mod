module github.com/eccheck/eccheck

go 1.26
