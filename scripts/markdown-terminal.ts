// Renders the job summary's GitHub-flavoured Markdown readably in a terminal: aligned tables,
// headings, folded sections opened, emphasis and code marks dropped.

function stripInline(text: string): string {
  return text
    .replace(/\*\*(.+?)\*\*/g, '$1')
    .replace(/`([^`]*)`/g, '$1')
    .replace(/\\\|/g, '|');
}

function renderTable(rows: string[]): string[] {
  const cells = rows
    .filter((row) => !/^\|\s*-{3}/.test(row))
    .map((row) =>
      row
        .replace(/^\|/, '')
        .replace(/\|$/, '')
        .split(/(?<!\\)\|/)
        .map((cell) => stripInline(cell.trim())),
    );
  const widths: number[] = [];
  for (const row of cells)
    row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, [...cell].length)));
  const line = (row: string[]): string =>
    `  ${row.map((cell, column) => cell + ' '.repeat((widths[column] ?? 0) - [...cell].length)).join('  ')}`.trimEnd();
  const [header, ...body] = cells;
  return header ? [line(header), `  ${widths.map((width) => '─'.repeat(width)).join('  ')}`, ...body.map(line)] : [];
}

export function markdownForTerminal(markdown: string): string {
  const out: string[] = [];
  const lines = markdown.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index]!;
    if (line.startsWith('|')) {
      const table: string[] = [];
      while (index < lines.length && lines[index]!.startsWith('|')) table.push(lines[index++]!);
      index -= 1;
      out.push(...renderTable(table));
      continue;
    }
    const details = /<details><summary>(.*)<\/summary>/.exec(line);
    if (details) {
      out.push(
        `${line.slice(0, details.index).trim() ? `${line.slice(0, details.index)} ` : ''}${stripInline(details[1]!)}:`,
      );
      continue;
    }
    if (/^\s*<\/details>\s*$/.test(line) || /^\s*```\s*$/.test(line)) continue;
    const heading = /^(#{2,4}) (.*)$/.exec(line);
    if (heading) {
      out.push(
        heading[1]!.length === 2
          ? `\x1b[1m${stripInline(heading[2]!)}\x1b[0m`
          : `\x1b[1m${stripInline(heading[2]!)}\x1b[0m`,
      );
      continue;
    }
    out.push(stripInline(line.replace(/^> (\[!CAUTION\])?/, '! ')));
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}
