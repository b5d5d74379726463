/*
 * A test runner for the real Moddable XS engine, as xsl links it for the x-cli-lin platform
 * (preloaded modules, frozen preparation). It speaks the netstring protocol of Agoric's
 * xsnap-worker, so hosts/sim/xsnap.ts (XsWorker) can drive it:
 *
 *   fd 3 -> us:  "e<source>" evaluate as a global script, "q" quit
 *   us -> fd 4:  ".<meters JSON>[\x01<ArrayBuffer bytes>]" or "!<exception>"
 *   during "e":  "?<bytes>" to fd 4, then "/<bytes>" back on fd 3 (xsnap.issueCommand)
 *
 * It installs the same `xsnap` object the device-faithful engine gives the harness
 * (hosts/sim/xs/native.ts): issueCommand, gc, now, print, setImmediate (run after the promise
 * jobs drain), and preload (nothing to do: xsl did it). stdout stays the scripts' (trace);
 * diagnostics go to stderr, with the frames when the JavaScript stack overflows.
 */

#include "xsAll.h"
#include "mc.xs.h"

#include <unistd.h>

#define mxToXs 3
#define mxFromXs 4

static void fxReadFully(int fd, void* buffer, size_t size)
{
	char* at = buffer;
	while (size > 0) {
		ssize_t count = read(fd, at, size);
		if ((count < 0) && (errno == EINTR))
			continue;
		if (count == 0)
			exit(0); /* the parent closed the pipe: nothing left to answer */
		if (count < 0) {
			perror("xs-ota runner: fd 3");
			exit(2);
		}
		at += count;
		size -= (size_t)count;
	}
}

static void fxWriteFully(int fd, const void* buffer, size_t size)
{
	const char* at = buffer;
	while (size > 0) {
		ssize_t count = write(fd, at, size);
		if ((count < 0) && (errno == EINTR))
			continue;
		if (count <= 0) {
			perror("xs-ota runner: fd 4");
			exit(2);
		}
		at += count;
		size -= (size_t)count;
	}
}

/* Returns a malloc'ed body, NUL-terminated for convenience. */
static char* fxReadNetstring(size_t* length)
{
	size_t size = 0;
	char c, *body;
	for (;;) {
		fxReadFully(mxToXs, &c, 1);
		if (c == ':')
			break;
		if ((c < '0') || ('9' < c) || (size > 100000000)) {
			fprintf(stderr, "xs-ota runner: bad netstring length\n");
			exit(2);
		}
		size = size * 10 + (size_t)(c - '0');
	}
	body = malloc(size + 1);
	if (!body) {
		fprintf(stderr, "xs-ota runner: cannot allocate %zu bytes\n", size);
		exit(2);
	}
	fxReadFully(mxToXs, body, size);
	body[size] = 0;
	fxReadFully(mxToXs, &c, 1);
	if (c != ',') {
		fprintf(stderr, "xs-ota runner: bad netstring end\n");
		exit(2);
	}
	*length = size;
	return body;
}

/* Kind byte, head and tail make one netstring, so a reply never needs joining in memory. */
static void fxWriteNetstring(char kind, const void* head, size_t headSize, const void* tail, size_t tailSize)
{
	char prefix[32];
	int prefixSize = snprintf(prefix, sizeof(prefix), "%zu:%c", 1 + headSize + tailSize, kind);
	/* trace() is printf on lin: push it out before the parent sees the reply it belongs to. */
	fflush(stdout);
	fxWriteFully(mxFromXs, prefix, (size_t)prefixSize);
	fxWriteFully(mxFromXs, head, headSize);
	fxWriteFully(mxFromXs, tail, tailSize);
	fxWriteFully(mxFromXs, ",", 1);
}

static txBoolean fxIsArrayBuffer(txSlot* slot)
{
	return mxIsReference(slot) && slot->value.reference->next && (slot->value.reference->next->kind == XS_ARRAY_BUFFER_KIND);
}

/* issueCommand(ArrayBuffer): ArrayBuffer, a synchronous call to the parent process. */
static void xs_issueCommand(xsMachine* the)
{
	size_t length;
	char* answer;
	if ((xsToInteger(xsArgc) < 1) || !fxIsArrayBuffer(&xsArg(0)))
		xsTypeError("issueCommand: not an ArrayBuffer");
	/* One xs macro per statement: they share the->scratch. No XS allocation between taking the
	   pointer and writing it, so the GC cannot move the bytes. */
	length = (size_t)xsGetArrayBufferLength(xsArg(0));
	fxWriteNetstring('?', xsToArrayBuffer(xsArg(0)), length, NULL, 0);
	answer = fxReadNetstring(&length);
	if ((length < 1) || (answer[0] != '/')) {
		fprintf(stderr, "xs-ota runner: expected a '/' answer, got '%c'\n", length ? answer[0] : ' ');
		exit(2);
	}
	xsResult = xsArrayBuffer(answer + 1, (xsIntegerValue)(length - 1));
	free(answer);
}

/* On lin, promise jobs wait as idle sources on the default glib context: run them until none is
   left, including the jobs they queue. Timers (if a Timer module were linked) are not waited for. */
static void fxDrainJobs(void)
{
	while (g_main_context_iteration(NULL, FALSE))
		;
}

/* The rest of the `xsnap` object the device-faithful engine offers the harness (hosts/sim/xs/native.ts). */
static void xs_gc(xsMachine* the)
{
	xsCollectGarbage();
}

static void xs_now(xsMachine* the)
{
	xsResult = xsNumber((double)g_get_monotonic_time() / 1000.0);
}

static void xs_print(xsMachine* the)
{
	if (xsToInteger(xsArgc) > 0)
		fputs(xsToString(xsArg(0)), stdout);
	fputc('\n', stdout);
}

static void xs_preload(xsMachine* the)
{
	/* Nothing to do: xsl preloaded and froze this program when it was linked. */
}

/* setImmediate(callback): queued on xsnap's hidden list, run by fxRunImmediates. */
static void xs_setImmediate(xsMachine* the)
{
	xsVars(1);
	xsVar(0) = xsGet(xsGet(xsGlobal, xsID("xsnap")), xsID("queue"));
	xsCall1(xsVar(0), xsID("push"), xsArg(0));
}

/* As xsnap does: after the promise jobs drain, the callbacks queued so far run, one batch at a
   time, each batch followed by the jobs it queued, until nothing is left. */
static void fxRunImmediates(xsMachine* machine)
{
	xsBeginHost(machine);
	xsVars(3);
	for (;;) {
		xsIntegerValue i, count;
		xsVar(0) = xsGet(xsGlobal, xsID("xsnap"));
		xsVar(1) = xsGet(xsVar(0), xsID("queue"));
		count = xsToInteger(xsGet(xsVar(1), xsID("length")));
		if (count == 0)
			break;
		xsSet(xsVar(0), xsID("queue"), xsNewArray(0));
		for (i = 0; i < count; i++) {
			xsVar(2) = xsGetAt(xsVar(1), xsInteger(i));
			xsTry {
				xsCallFunction0(xsVar(2), xsUndefined);
			}
			xsCatch {
			}
		}
		fxDrainJobs();
	}
	xsEndHost(machine);
}

static void fxInstallXsnap(xsMachine* machine)
{
	xsBeginHost(machine);
	xsVars(1);
	xsVar(0) = xsNewObject();
	xsSet(xsVar(0), xsID("issueCommand"), xsNewHostFunction(xs_issueCommand, 1));
	xsSet(xsVar(0), xsID("gc"), xsNewHostFunction(xs_gc, 0));
	xsSet(xsVar(0), xsID("now"), xsNewHostFunction(xs_now, 0));
	xsSet(xsVar(0), xsID("print"), xsNewHostFunction(xs_print, 1));
	xsSet(xsVar(0), xsID("preload"), xsNewHostFunction(xs_preload, 0));
	xsSet(xsVar(0), xsID("setImmediate"), xsNewHostFunction(xs_setImmediate, 1));
	xsSet(xsVar(0), xsID("queue"), xsNewArray(0));
	xsSet(xsGlobal, xsID("xsnap"), xsVar(0));
	xsEndHost(machine);
}

static void fxEvaluate(xsMachine* machine, char* source, size_t length)
{
	xsBeginHost(machine);
	{
		char* error = NULL;
		xsVars(1);
		xsTry {
			/* Called from C, eval is indirect: the source runs as a global script. */
			xsVar(0) = xsCall1(xsGlobal, xsID("eval"), xsStringBuffer(source, (xsIntegerValue)length));
		}
		xsCatch {
			xsVar(0) = xsException;
			xsTry {
				error = strdup(xsToString(xsVar(0)));
			}
			xsCatch {
				error = strdup("(exception without a string value)");
			}
		}
		fxDrainJobs();
		fxRunImmediates(machine);
		if (error) {
			fxWriteNetstring('!', error, strlen(error), NULL, 0);
			free(error);
		}
		else {
			char meters[128];
			int metersSize = snprintf(meters, sizeof(meters), "{\"compute\":0,\"currentHeapCount\":%ld}", (long)the->currentHeapCount);
			if (fxIsArrayBuffer(&xsVar(0))) {
				size_t resultSize = (size_t)xsGetArrayBufferLength(xsVar(0));
				/* The 0x01 separator goes out as part of the head, right after the JSON. */
				meters[metersSize++] = 1;
				fxWriteNetstring('.', meters, (size_t)metersSize, xsToArrayBuffer(xsVar(0)), resultSize);
			}
			else
				fxWriteNetstring('.', meters, (size_t)metersSize, NULL, 0);
		}
	}
	xsEndHost(machine);
}

/* Moddable leaves fxAbort to the platform's main. A device would reset here; we exit, so the
   parent sees the worker die with the reason on stderr. */
void fxAbort(xsMachine* the, int status)
{
	static txBoolean aborting = 0;
	txString fxAbortString(int status);
#ifdef mxDebug
	if ((XS_DEAD_STRIP_EXIT == status) && the->debugEval)
		mxUnknownError("dead strip");
#endif
	fprintf(stderr, "xs-ota runner: abort: %s", fxAbortString(status));
	/* XS leaves the rejection reason or the exception in mxException: say which it was. */
	if (!aborting && ((XS_UNHANDLED_REJECTION_EXIT == status) || (XS_UNHANDLED_EXCEPTION_EXIT == status))) {
		aborting = 1;
		mxTry(the) {
			mxPush(mxException);
			fxToString(the, the->stack);
			fprintf(stderr, ": %s", the->stack->value.string);
			mxPop();
		}
		mxCatch(the) {
		}
	}
	fprintf(stderr, "\n");
	/* Where the stack ran out: the frames, innermost first, to find what is deep. */
	if (XS_JAVASCRIPT_STACK_OVERFLOW_EXIT == status) {
		txSlot* frame = the->frame;
		char name[128];
		while (frame) {
			name[0] = 0;
			fxBufferFrameName(the, name, sizeof(name), frame, "");
			fprintf(stderr, "  at %s\n", name);
			frame = frame->next;
		}
	}
	fflush(stdout);
	exit((status > 0) ? status : 1);
}

int main(int argc, char* argv[])
{
	xsMachine* machine = fxPrepareMachine(NULL, xsPreparation(), "xs-ota", NULL, NULL);
	if (!machine) {
		fprintf(stderr, "xs-ota runner: cannot prepare the XS machine\n");
		return 1;
	}
	fxInstallXsnap(machine);
	for (;;) {
		size_t length;
		char* command = fxReadNetstring(&length);
		if ((length > 0) && (command[0] == 'e'))
			fxEvaluate(machine, command + 1, length - 1);
		else if ((length > 0) && (command[0] == 'q')) {
			free(command);
			break;
		}
		else {
			const char* unknown = "unknown command";
			fxWriteNetstring('!', unknown, strlen(unknown), NULL, 0);
		}
		free(command);
	}
	xsDeleteMachine(machine);
	fflush(stdout);
	return 0;
}
