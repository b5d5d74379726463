// xsl freezes the built-ins (and checks what it preloads) only when the build preloads or strips
// something; the runner strips nothing, so it always preloads this module, and a runner build
// gets the frozen built-ins of a device build even when its caller preloads nothing.
export {};
