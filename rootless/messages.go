package rootless

import (
	"errors"
	"fmt"
	"io"
)

// The sandbox's pid 1 reports to the parent over a pipe:
//
//	parent → child:  the Spec (Spec.MarshalBinary) on fd 3, then EOF
//	child → parent:  msgStarted once the command runs, or msgSetupError;
//	                 msgWaiting with their number if the command exits
//	                 while commands that joined the sandbox run (Join);
//	                 then msgExited with the command's status, once every
//	                 process of the sandbox is gone
//
// A child that exits without a message died during setup.
type msgType string

const (
	msgStarted    msgType = "started"
	msgSetupError msgType = "setup-error"
	msgExited     msgType = "exited"
	msgWaiting    msgType = "waiting"
)

// message is one report of pid 1 (sendMessage, readMessage).
type message struct {
	Type   msgType
	Error  string
	Status int
}

// SetupError is a failure to set the sandbox up, reported by its pid 1
// before the command started.
type SetupError struct{ Msg string }

func (e *SetupError) Error() string { return "sandbox setup: " + e.Msg }

// waitStarted reads the child's first message.
func waitStarted(r io.ByteReader) error {
	m, err := readMessage(r)
	if err != nil {
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
