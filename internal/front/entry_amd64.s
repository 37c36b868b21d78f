//go:build devbox_front

#include "textflag.h"

// _devbox_entry is the executable's entry point (make build links devbox
// with -E _devbox_entry): the front (c/front.c) runs first, on the
// process's initial stack, then the Go runtime's own entry point, as if
// the front had not run.
TEXT _devbox_entry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SP, DI		// argc, argv, envp: the front's argument
	MOVQ	SP, BX		// kept across the C call (callee-saved)
	ANDQ	$~15, SP	// the C calling convention's alignment
	CALL	devbox_front(SB)
	MOVQ	BX, SP
	JMP	_rt0_amd64_linux(SB)
