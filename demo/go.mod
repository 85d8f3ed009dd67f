module demo

go 1.18
