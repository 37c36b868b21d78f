package env

import (
	"fmt"
	"strings"
)

// An [env] value may name variables, as Dev Containers' do:
//
//	${localEnv:NAME}        the host's NAME (a token, a proxy)
//	${containerEnv:NAME}    NAME inside, before [env] applies: the image's
//	                        Env and devbox's own (PATH, HOME, USER)
//
// each with an optional default after a second colon, used where NAME is
// unset: ${localEnv:HTTP_PROXY:}. Nothing else of the host's comes in
// unless a value names it. Any other text, "${" included, stays as it is.

// envRefKinds are the kinds of reference an [env] value may hold.
var envRefKinds = []string{"localEnv", "containerEnv"}

// envRef is one reference in an [env] value: value[start:end] is
// "${kind:name}" or "${kind:name:default}".
type envRef struct {
	start, end       int
	kind, name, dflt string
}

// envRefs finds the references in v. A malformed one (no closing brace,
// a bad name) or a kind in the wrong case is an error.
func envRefs(v string) ([]envRef, error) {
	var refs []envRef
	for i := 0; ; {
		j := strings.Index(v[i:], "${")
		if j < 0 {
			return refs, nil
		}
		start := i + j
		i = start + 2
		kind, rest, ok := strings.Cut(v[i:], ":")
		if !ok {
			continue
		}
		known := false
		for _, k := range envRefKinds {
			if kind == k {
				known = true
			} else if strings.EqualFold(kind, k) {
				return nil, fmt.Errorf("${%s:...} must be spelled ${%s:...}", kind, k)
			}
		}
		if !known {
			continue
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("${%s: has no closing brace: write ${%s:NAME} or ${%s:NAME:default}", kind, kind, kind)
		}
		body := rest[:end]
		name, dflt, _ := strings.Cut(body, ":")
		if !envPattern().MatchString(name) {
			return nil, fmt.Errorf("${%s:%s}: %q is not a variable name", kind, body, name)
		}
		i += len(kind) + 1 + end + 1
		refs = append(refs, envRef{start: start, end: i, kind: kind, name: name, dflt: dflt})
	}
}

// expandEnvRefs is v with its references replaced: by local's value for
// localEnv, container's for containerEnv, the default where the variable
// is unset, and "" without a default. v was checked when devbox.toml was
// read; were it malformed, it is kept as it is.
func expandEnvRefs(v string, local, container func(string) (string, bool)) string {
	refs, err := envRefs(v)
	if err != nil || len(refs) == 0 {
		return v
	}
	var b strings.Builder
	last := 0
	for _, r := range refs {
		b.WriteString(v[last:r.start])
		lookup := local
		if r.kind == "containerEnv" {
			lookup = container
		}
		if val, ok := lookup(r.name); ok {
			b.WriteString(val)
		} else {
			b.WriteString(r.dflt)
		}
		last = r.end
	}
	b.WriteString(v[last:])
	return b.String()
}
