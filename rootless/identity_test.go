package rootless

import "testing"

func TestMergeEntry(t *testing.T) {
	const image = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
	const alice = "alice:x:1001:1001::/home/alice:/bin/sh"
	tests := []struct {
		name, file, user, id, entry, want string
		added                             bool
	}{
		{"user added", image, "alice", "1001", alice, image + alice + "\n", true},
		{"id known to the image is kept", image, "alice", "1000", "alice:x:1000:1000::/home/alice:/bin/sh", image, false},
		{"root is kept", image, "root", "0", "root:x:0:0::/root:/bin/sh", image, false},
		{"same name with another id is replaced", image, "node", "1001", "node:x:1001:1001::/home/node:/bin/sh",
			"root:x:0:0:root:/root:/bin/sh\nnode:x:1001:1001::/home/node:/bin/sh\n", true},
		{"no file", "", "alice", "1001", alice, alice + "\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, added := mergeEntry([]byte(tt.file), tt.user, tt.id, tt.entry)
			if string(got) != tt.want || added != tt.added {
				t.Errorf("got (added %v)\n%s\nwant (added %v)\n%s", added, got, tt.added, tt.want)
			}
		})
	}
}

func TestWithHostName(t *testing.T) {
	const host = "127.0.0.1\tlocalhost\n127.0.1.1\tlaptop.example laptop\n"
	tests := []struct{ name, hosts, want string }{
		{"added", host, host + "127.0.1.1\tdevbox\n"},
		{"named already", host + "10.0.0.5 build devbox # the CI box\n", host + "10.0.0.5 build devbox # the CI box\n"},
		{"only in a comment", host + "# devbox\n", host + "# devbox\n127.0.1.1\tdevbox\n"},
		{"an address is not a name", "devbox\n", "devbox\n127.0.1.1\tdevbox\n"},
		{"no final newline", "127.0.0.1 localhost", "127.0.0.1 localhost\n127.0.1.1\tdevbox\n"},
		{"no file", "", "127.0.1.1\tdevbox\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(withHostName([]byte(tt.hosts), "devbox")); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
