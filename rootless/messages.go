package rootless

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The sandbox's pid 1 reports to the parent over a pipe with one message:
//
//	parent → child:  the Spec, as JSON on fd 3, then EOF
//	child → parent:  msgStarted once the command runs, or msgSetupError;
//	                 then the pipe closes
//
// A child that exits without a message died during setup.
type msgType string

const (
	msgStarted    msgType = "started"
	msgSetupError msgType = "setup-error"
)

type message struct {
	Type  msgType `json:"type"`
	Error string  `json:"error,omitempty"`
}

func sendMessage(w io.Writer, m message) error {
	return json.NewEncoder(w).Encode(m)
}

// SetupError is a failure to set the sandbox up, reported by its pid 1
// before the command started.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return "sandbox setup: " + e.Msg }

// waitStarted reads the child's message.
func waitStarted(r io.Reader) error {
	var m message
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return &SetupError{Msg: "the sandbox exited before starting the command"}
		}
		return fmt.Errorf("read from sandbox: %w", err)
	}
	switch m.Type {
	case msgStarted:
		return nil
	case msgSetupError:
		return &SetupError{Msg: m.Error}
	}
	return fmt.Errorf("sandbox sent an unknown message %q", m.Type)
}
