package rootless

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The sandbox's pid 1 reports to the parent over a pipe:
//
//	parent → child:  the Spec, as JSON on fd 3, then EOF
//	child → parent:  msgStarted once the command runs, or msgSetupError;
//	                 then msgExited with the command's status, once every
//	                 process of the sandbox is gone
//
// A child that exits without a message died during setup.
type msgType string

const (
	msgStarted    msgType = "started"
	msgSetupError msgType = "setup-error"
	msgExited     msgType = "exited"
)

type message struct {
	Type   msgType `json:"type"`
	Error  string  `json:"error,omitempty"`
	Status int     `json:"status,omitempty"`
}

func sendMessage(w io.Writer, m message) error {
	return json.NewEncoder(w).Encode(m)
}

// SetupError is a failure to set the sandbox up, reported by its pid 1
// before the command started.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return "sandbox setup: " + e.Msg }

// waitStarted reads the child's first message.
func waitStarted(dec *json.Decoder) error {
	var m message
	if err := dec.Decode(&m); err != nil {
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
