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
