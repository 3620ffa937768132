// Reads ippool-rules/RULES.md (the rules' documentation: one table row per code) into
// { code: { what, calicoReason, fix } } with each cell rendered to HTML, for the rules page.
import { marked } from 'marked';

const COLUMNS = { what: 'what', "calico's reason": 'calicoReason', fix: 'fix' };

export function rulesDoc(markdown) {
  const doc = {};
  for (const token of marked.lexer(markdown)) {
    if (token.type !== 'table') continue;
    const names = token.header.map((cell) => cell.text.trim().toLowerCase());
    const codeAt = names.indexOf('code');
    if (codeAt < 0) continue;
    for (const row of token.rows) {
      const code = row[codeAt].text.trim();
      const entry = {};
      names.forEach((name, i) => {
        const key = COLUMNS[name];
        const text = row[i]?.text.trim();
        if (key && text && text !== '—') entry[key] = marked.parseInline(text);
      });
      doc[code] = entry;
    }
  }
  return doc;
}
