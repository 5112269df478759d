/**
 * Setup of the mutation runs only (vitest.mutation.config.ts). Each model-based fast-check property stops
 * after 1.5 s of wall time and counts as passed if no counterexample was found by then: a mutant that
 * breaks an invariant is almost always caught in the first few runs, and a surviving mutant would otherwise
 * pay the full numRuns of every model test that covers it. Tests that set their own time limit keep it.
 */
import fc from "fast-check"

fc.configureGlobal({ interruptAfterTimeLimit: 1_500, markInterruptAsFailure: false })
