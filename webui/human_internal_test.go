package webui

import (
	"testing"
	"time"
)

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "expired",
		0:                               "expired",
		1500 * time.Millisecond:         "2s",
		30 * time.Minute:                "30m",
		29*time.Minute + 59*time.Second: "29m 59s",
		time.Hour + 4*time.Minute:       "1h 4m",
		2 * time.Hour:                   "2h",
		50 * time.Hour:                  "2d 2h",
		72 * time.Hour:                  "3d",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "/",
		"/approvals":         "/approvals",
		"/requests/x?done=1": "/requests/x?done=1",
		"//evil.example":     "/",
		"/\\evil.example":    "/",
		"https://evil":       "/",
		"evil":               "/",
		"/a\r\nSet-Cookie:":  "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
