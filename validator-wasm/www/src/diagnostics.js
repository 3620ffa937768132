// Maps the validator's report onto CodeMirror. Report positions are 1-based lines and 1-based columns
// counted in UTF-16 code units with an exclusive end — the same units CodeMirror uses for offsets, so a
// position is `line.from + column - 1`, clamped to the document.

/** Offset of a 1-based (line, column) in a CodeMirror `Text`. */
export function offsetOf(doc, line, column) {
  if (line < 1) return 0;
  if (line > doc.lines) return doc.length;
  const l = doc.line(line);
  return Math.min(l.from + Math.max(column, 1) - 1, l.to);
}

/**
 * The editor range of a diagnostic. An empty span (a missing field reported at its parent's key, or a
 * document-level finding) is widened to the line's text so that it is visible as an underline.
 */
export function rangeOf(doc, d) {
  let from = offsetOf(doc, d.line, d.column);
  let to = offsetOf(doc, d.endLine ?? d.line, d.endColumn ?? d.column);
  if (to < from) [from, to] = [to, from];
  if (from === to && doc.length > 0) {
    const l = doc.lineAt(from);
    const indent = l.text.length - l.text.trimStart().length;
    if (l.length > indent) {
      from = l.from + indent;
      to = l.to;
    } else if (to < doc.length) {
      to += 1;
    } else {
      from -= 1;
    }
  }
  return { from, to };
}

/** Every diagnostic of a report, flattened, with the document it belongs to. */
export function flatten(report) {
  return report.documents.flatMap((doc) => doc.diagnostics.map((d) => ({ ...d, document: doc })));
}

export function ruleLink(code) {
  return `rules.html#${encodeURIComponent(code)}`;
}
