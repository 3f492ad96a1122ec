/** GraphQL's name syntax, at most 100 characters: anything else never becomes a label. */
const NAME = /^[_A-Za-z][_0-9A-Za-z]{0,99}$/;

/**
 * Operation names as metric labels. Names come from clients, so the label set is capped: the
 * first `max` distinct names that are admitted keep their own label, every later one shares
 * `other`, and an unnamed operation is `anonymous`. Only names of operations that passed
 * validation are admitted (the caller says so), so a client sending garbage documents cannot use
 * up the places; an already admitted name is used whatever the outcome.
 */
export class OperationNameLabels {
  static readonly ANONYMOUS = 'anonymous';
  static readonly OTHER = 'other';

  private readonly admitted = new Set<string>();

  constructor(readonly max: number) {}

  label(name: string | null | undefined, admit: boolean): string {
    if (!name) return OperationNameLabels.ANONYMOUS;
    if (this.admitted.has(name)) return name;
    if (!admit || this.admitted.size >= this.max || !NAME.test(name)) return OperationNameLabels.OTHER;
    this.admitted.add(name);
    return name;
  }
}
