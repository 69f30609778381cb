// A preview's name, pr-N (docs/previews.md): its DNS label, its folder and its nginx file. One rule,
// made from the pull request's number only (never from a branch or title) and checked again
// wherever a name comes back in before it becomes a path or a host name.
import { ValidationError } from '../core/errors.ts';

/** Pull request numbers go this high at most (nine digits). */
export const MAX_PR = 999_999_999;
const NAME = /^pr-([1-9][0-9]{0,8})$/;

/** The name of pull request `pr`'s preview: `pr-42`. */
export function previewName(pr: number): string {
  if (!Number.isSafeInteger(pr) || pr < 1 || pr > MAX_PR)
    throw new ValidationError(`Invalid pull request number ${String(pr).slice(0, 40)}: give a whole number from 1.`);
  return `pr-${pr}`;
}

/** Why `name` is not a preview name (pr- and a positive whole number), or undefined when it is. */
export function previewNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || !NAME.test(name))
    return 'is not pr- followed by a pull request number (such as pr-42)';
  return undefined;
}

/** `name` unchanged when it is a preview name; else a ValidationError that says what it is not. */
export function validatePreviewName(name: unknown): string {
  const problem = previewNameProblem(name);
  if (problem)
    throw new ValidationError(`Invalid preview name ${JSON.stringify(String(name).slice(0, 60))}: it ${problem}.`);
  return name as string;
}

/** The pull request number of a preview name: `pr-42` → 42. */
export function prOfName(name: string): number {
  return Number(NAME.exec(validatePreviewName(name))![1]);
}
