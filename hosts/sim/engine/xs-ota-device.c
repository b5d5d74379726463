/*
 * xs-ota's device-faithful XS: what turns Agoric's xsnap-worker into an engine that behaves like
 * the XS of a Moddable ESP32 build (hosts/sim/engine/build.ts compiles it in).
 *
 * - Globals: a Moddable esp32 app has the language's built-ins and `trace`, nothing of xsnap's
 *   (TextEncoder, TextDecoder, setImmediate, Base64, harden, gc, print, performance...). Those
 *   are removed; the few the simulator's native layer and the test harness need move to one
 *   `xsnap` object (issueCommand, print, gc, now, setImmediate, preload, and TextEncoder and
 *   TextDecoder for the bridge's own framing).
 * - Preload: `xsnap.preload()` does to the machine what Moddable's linker (xsl) does to it after
 *   it has run the preloaded modules and before it writes the heap to flash: Object.freeze on
 *   the built-in prototypes and namespaces, then, for every live instance, the rules by which xsl
 *   decides what stays in flash read-only: functions, the prototypes of constructors and closure
 *   environments are petrified, and so are the instances whose contents XS cannot alias into RAM
 *   (Map, Set, WeakMap, WeakSet, WeakRef, FinalizationRegistry, ArrayBuffer, DataView, typed
 *   arrays, Promise, Proxy, RegExp); module-level bindings that hold functions become constant.
 *   Plain objects and arrays stay writable: on a device XS copies them into RAM on first write.
 */
#include "xsAll.h"
#include "xsnap.h"

static void fxPetrify(txSlot* instance)
{
	txSlot* property = instance->next;
	while (property) {
		if (property->kind != XS_ACCESSOR_KIND)
			property->flag |= XS_DONT_SET_FLAG;
		property->flag |= XS_DONT_DELETE_FLAG;
		property = property->next;
	}
	instance->flag |= XS_DONT_PATCH_FLAG;
}

static txBoolean fxHasCode(txSlot* instance)
{
	txSlot* internal = instance->next;
	return internal && (internal->flag & XS_INTERNAL_FLAG) && ((internal->kind == XS_CALLBACK_KIND) || (internal->kind == XS_CALLBACK_X_KIND) || (internal->kind == XS_CODE_KIND) || (internal->kind == XS_CODE_X_KIND));
}

static void fxPetrifyInstance(txSlot* instance)
{
	txSlot* internal = instance->next;
	if (!internal || !(internal->flag & XS_INTERNAL_FLAG))
		return;
	if (internal->ID == XS_ENVIRONMENT_BEHAVIOR) {
		fxPetrify(instance);
		return;
	}
	if (fxHasCode(instance)) {
		fxPetrify(instance);
		if (instance->flag & XS_CAN_CONSTRUCT_FLAG) {
			txSlot* property = internal->next;
			while (property) {
				if ((property->ID == mxID(_prototype)) && (property->kind == XS_REFERENCE_KIND)) {
					fxPetrify(property->value.reference);
					break;
				}
				property = property->next;
			}
		}
		return;
	}
	switch (internal->kind) {
	case XS_MAP_KIND:
	case XS_SET_KIND:
	case XS_WEAK_MAP_KIND:
	case XS_WEAK_SET_KIND:
	case XS_WEAK_REF_KIND:
	case XS_ARRAY_BUFFER_KIND:
	case XS_DATA_VIEW_KIND:
	case XS_TYPED_ARRAY_KIND:
	case XS_PROXY_KIND:
		fxPetrify(instance);
		break;
	case XS_REGEXP_KIND:
		/* In flash a RegExp keeps its compiled code but no match data: exec then works on a
		   temporary copy, a path of its own (and the one that has crashed XS). */
		fxPetrify(instance);
		internal->value.regexp.data = C_NULL;
		break;
	case XS_PROMISE_KIND:
		fxPetrify(instance);
		if (internal->next && (internal->next->kind == XS_REFERENCE_KIND))
			fxPetrify(internal->next->value.reference);
		break;
	case XS_CLOSURE_KIND:
		if (internal->value.closure && (internal->value.closure->kind == XS_FINALIZATION_REGISTRY_KIND))
			fxPetrify(instance);
		break;
	default:
		break;
	}
}

/* Module-level bindings: those holding functions become constant, the others stay writable. */
static void fxPrepareClosure(txSlot* slot)
{
	txSlot* closure = slot->value.closure;
	if (!closure)
		return;
	if ((closure->kind == XS_REFERENCE_KIND) && fxHasCode(closure->value.reference))
		closure->flag |= XS_DONT_SET_FLAG;
#ifdef mxHostFunctionPrimitive
	else if (closure->kind == XS_HOST_FUNCTION_KIND)
		closure->flag |= XS_DONT_SET_FLAG;
#endif
	if (!(closure->flag & XS_DONT_SET_FLAG))
		slot->flag &= ~XS_DONT_SET_FLAG;
}

static void fxFreezeObject(txMachine* the, txSlot* freeze, txSlot* object)
{
	if (object->kind != XS_REFERENCE_KIND)
		return;
	mxPush(mxObjectConstructor);
	mxPushSlot(freeze);
	mxCall();
	mxPushSlot(object);
	mxRunCount(1);
	mxPop();
}

static void fxFreezeProperty(txMachine* the, txSlot* freeze, txSlot* object, txID id)
{
	mxPushSlot(object);
	mxGetID(id);
	fxFreezeObject(the, freeze, the->stack);
	mxPop();
}

static void fxFreezeBuiltIns(txMachine* the)
{
	txSlot* const prototypes[] = {
		&mxAggregateErrorPrototype, &mxArgumentsSloppyPrototype, &mxArgumentsStrictPrototype, &mxArrayBufferPrototype,
		&mxArrayIteratorPrototype, &mxArrayPrototype, &mxAsyncFromSyncIteratorPrototype, &mxAsyncFunctionPrototype,
		&mxAsyncGeneratorFunctionPrototype, &mxAsyncGeneratorPrototype, &mxAsyncIteratorPrototype, &mxBigIntPrototype,
		&mxBooleanPrototype, &mxCompartmentPrototype, &mxDataViewPrototype, &mxDatePrototype, &mxErrorPrototype,
		&mxEvalErrorPrototype, &mxFinalizationRegistryPrototype, &mxFunctionPrototype, &mxGeneratorFunctionPrototype,
		&mxGeneratorPrototype, &mxHostPrototype, &mxIteratorPrototype, &mxMapIteratorPrototype, &mxMapPrototype,
		&mxModulePrototype, &mxNumberPrototype, &mxObjectPrototype, &mxPromisePrototype, &mxProxyPrototype,
		&mxRangeErrorPrototype, &mxReferenceErrorPrototype, &mxRegExpPrototype, &mxRegExpStringIteratorPrototype,
		&mxSetIteratorPrototype, &mxSetPrototype, &mxSharedArrayBufferPrototype, &mxStringIteratorPrototype,
		&mxStringPrototype, &mxSymbolPrototype, &mxSyntaxErrorPrototype, &mxTransferPrototype, &mxTypedArrayPrototype,
		&mxTypeErrorPrototype, &mxURIErrorPrototype, &mxWeakMapPrototype, &mxWeakRefPrototype, &mxWeakSetPrototype,
		&mxAtomicsObject, &mxJSONObject, &mxMathObject, &mxReflectObject,
	};
	txSlot* freeze;
	txInteger index;
	const txTypeDispatch* dispatch;
	mxTemporary(freeze);
	mxPush(mxObjectConstructor);
	mxGetID(mxID(_freeze));
	mxPullSlot(freeze);
	for (index = 0; index < (txInteger)(sizeof(prototypes) / sizeof(prototypes[0])); index++)
		fxFreezeObject(the, freeze, prototypes[index]);
	for (index = 0, dispatch = &gxTypeDispatches[0]; index < mxTypeArrayCount; index++, dispatch++)
		fxFreezeProperty(the, freeze, &the->stackPrototypes[-1 - (txInteger)dispatch->constructorID], mxID(_prototype));
	fxFreezeProperty(the, freeze, &mxEnumeratorFunction, mxID(_prototype));
	fxFreezeProperty(the, freeze, &mxArrayPrototype, mxID(_Symbol_unscopables));
	mxPop();
}

static txInteger fxPreloaded = 0;

static void xs_preload(xsMachine* the)
{
	txSlot *heap, *slot, *limit;
	if (fxPreloaded)
		mxTypeError("preload: already done (a device links its preloads once)");
	fxPreloaded = 1;
	fxFreezeBuiltIns(the);
	fxCollectGarbage(the);
	/* No allocation from here on: free slots are told apart by a mark, as xsl does. */
	for (slot = the->freeHeap; slot; slot = slot->next)
		slot->flag |= XS_MARK_FLAG;
	for (heap = the->firstHeap; heap; heap = heap->next) {
		limit = heap->value.reference;
		for (slot = heap + 1; slot < limit; slot++) {
			if (slot->flag & XS_MARK_FLAG)
				continue;
			if (slot->kind == XS_INSTANCE_KIND)
				fxPetrifyInstance(slot);
		}
	}
	for (heap = the->firstHeap; heap; heap = heap->next) {
		limit = heap->value.reference;
		for (slot = heap + 1; slot < limit; slot++) {
			if (!(slot->flag & XS_MARK_FLAG) && (slot->kind == XS_CLOSURE_KIND))
				fxPrepareClosure(slot);
		}
	}
	for (slot = the->freeHeap; slot; slot = slot->next)
		slot->flag &= ~XS_MARK_FLAG;
}

/* Moddable's trace: the text as is, no newline added. */
static void xs_trace(xsMachine* the)
{
	xsIntegerValue i, c = xsToInteger(xsArgc);
	for (i = 0; i < c; i++)
		fputs(xsToString(xsArg(i)), stdout);
	fflush(stdout);
}

static char* const gxXsnapGlobals[] = {
	"setImmediate", "TextEncoder", "TextDecoder", "Base64", "harden", "lockdown",
	"currentMeterLimit", "resetMeter", "gc", "print", "issueCommand", "performance",
};

void fxBuildDeviceAgent(xsMachine* the)
{
	xsIntegerValue i;
	xsBeginHost(the);
	xsVars(2);
	xsVar(0) = xsNewObject();
	xsDefine(xsVar(0), xsID("issueCommand"), xsGet(xsGlobal, xsID("issueCommand")), xsDontEnum);
	xsDefine(xsVar(0), xsID("print"), xsGet(xsGlobal, xsID("print")), xsDontEnum);
	xsDefine(xsVar(0), xsID("gc"), xsGet(xsGlobal, xsID("gc")), xsDontEnum);
	xsDefine(xsVar(0), xsID("setImmediate"), xsGet(xsGlobal, xsID("setImmediate")), xsDontEnum);
	/* The bridge's framing, native as a device's drivers are: kept out of the agent's meters. */
	xsDefine(xsVar(0), xsID("TextEncoder"), xsGet(xsGlobal, xsID("TextEncoder")), xsDontEnum);
	xsDefine(xsVar(0), xsID("TextDecoder"), xsGet(xsGlobal, xsID("TextDecoder")), xsDontEnum);
	xsVar(1) = xsGet(xsGlobal, xsID("performance"));
	xsDefine(xsVar(0), xsID("now"), xsGet(xsVar(1), xsID("now")), xsDontEnum);
	xsDefine(xsVar(0), xsID("preload"), xsNewHostFunction(xs_preload, 0), xsDontEnum);
	for (i = 0; i < (xsIntegerValue)(sizeof(gxXsnapGlobals) / sizeof(gxXsnapGlobals[0])); i++) {
		if (xsHas(xsGlobal, xsID(gxXsnapGlobals[i])))
			xsDelete(xsGlobal, xsID(gxXsnapGlobals[i]));
	}
	xsDefine(xsGlobal, xsID("xsnap"), xsVar(0), xsDontEnum);
	xsDefine(xsGlobal, xsID("trace"), xsNewHostFunction(xs_trace, 1), xsDontEnum);
	xsEndHost(the);
}
