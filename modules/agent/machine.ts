/**
 * A state machine written as an explicit transition table: each row names the state it applies in,
 * the event type it takes, the handler to run, and the states the handler may move to. Events are
 * dispatched one at a time (events raised while a handler runs wait their turn), events no row
 * takes go to one `unmatched` function, and a handler that returns a state its row does not list is
 * a programming error caught at once. Tests can set any state and step one event.
 */
export interface MachineEvent {
  type: string;
}

export interface Transition<S extends string, E extends MachineEvent, C> {
  state: S;
  event: E["type"];
  /** Runs the step and returns the next state (one of `next`); undefined keeps the state. */
  handler: (context: C, event: E) => S | void;
  /** Every state the handler may return. */
  next: readonly S[];
}

export class Machine<S extends string, E extends MachineEvent, C> {
  readonly table: readonly Transition<S, E, C>[];
  readonly initial: S;
  #state: S;
  #queue: E[] = [];
  #running = false;
  readonly #context: C;
  readonly #unmatched: (state: S, event: E) => void;
  readonly #onTransition: ((from: S, event: E, to: S) => void) | undefined;

  constructor(options: {
    table: readonly Transition<S, E, C>[];
    initial: S;
    context: C;
    unmatched: (state: S, event: E) => void;
    onTransition?: (from: S, event: E, to: S) => void;
  }) {
    this.table = options.table;
    this.initial = options.initial;
    this.#state = options.initial;
    this.#context = options.context;
    this.#unmatched = options.unmatched;
    this.#onTransition = options.onTransition;
  }

  get state(): S {
    return this.#state;
  }

  /** For tests: put the machine in a state without a transition. */
  force(state: S): void {
    this.#state = state;
  }

  /** Queues an event and runs the queue unless a handler is running already. */
  dispatch(event: E): void {
    this.#queue.push(event);
    if (this.#running) return;
    this.#running = true;
    try {
      for (let e = this.#queue.shift(); e !== undefined; e = this.#queue.shift()) this.step(e);
    } finally {
      this.#running = false;
    }
  }

  /** Runs exactly one event now. */
  step(event: E): void {
    const row = this.table.find((t) => t.state === this.#state && t.event === event.type);
    if (!row) {
      this.#unmatched(this.#state, event);
      return;
    }
    const from = this.#state;
    const to = row.handler(this.#context, event) ?? from;
    if (to !== from && !row.next.includes(to)) {
      throw new Error(`state machine: ${from} --${event.type}--> ${to} is not in the table (allowed: ${row.next.join(", ")})`);
    }
    this.#state = to;
    this.#onTransition?.(from, event, to);
  }
}

/** Structural checks for a table: states no row leads to, and states no row leaves. */
export function analyse<S extends string>(table: readonly { state: S; next: readonly S[] }[], initial: S, states: readonly S[]): { unreachable: S[]; deadEnds: S[] } {
  const reached = new Set<S>([initial]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const t of table) {
      if (!reached.has(t.state)) continue;
      for (const n of t.next) if (!reached.has(n)) reached.add(n), (grew = true);
    }
  }
  const leaving = (s: S) => table.some((t) => t.state === s && t.next.some((n) => n !== s));
  return { unreachable: states.filter((s) => !reached.has(s)), deadEnds: states.filter((s) => !leaving(s)) };
}
