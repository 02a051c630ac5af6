module github.com/warden-mqtt/warden

go 1.26
