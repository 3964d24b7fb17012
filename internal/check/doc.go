// Package check holds kho-sim's promise checker: it watches the FLB
// callbacks a simulated kernel makes and the file operations that caused
// them, and reports every promise of luo_flb.c that the run broke.
//
// The checker never looks at the model's internals. It keeps its own count of
// preserved dependent files per FLB and derives, from the documented promises
// alone, what the callbacks must have been: state saved exactly once per
// 0->1 transition, unpreserved exactly when the count returns to 0, a
// serialized count equal to the dependent files, retrieve at most once,
// finish exactly once after the last dependent file finished, and retrieved
// data equal to what was preserved.
package check
