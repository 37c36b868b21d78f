module github.com/devboxhq/devbox

go 1.26
