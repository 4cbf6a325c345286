//! The lexer: text to words and braces, then words and balanced `{ }` blocks.

use super::ConfError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TokKind {
    Word(String),
    Open,
    Close,
}

#[derive(Debug, Clone)]
pub(super) struct Tok {
    pub(super) kind: TokKind,
    pub(super) line: usize,
}

/// Splits the text into words, `{` and `}`. `#` (outside double quotes) comments out the rest of
/// the line, as in VPP. Double quotes group a value containing spaces (an rvpp extension; VPP has
/// no quoting), with `\"` and `\\` escapes.
pub(super) fn lex(src: &str, origin: &str) -> Result<Vec<Tok>, ConfError> {
    let mut toks = Vec::new();
    let mut line = 1usize;
    let mut word = String::new();
    let mut word_line = 1usize;
    let mut chars = src.chars().peekable();

    fn flush(word: &mut String, word_line: usize, toks: &mut Vec<Tok>) {
        if !word.is_empty() {
            toks.push(Tok {
                kind: TokKind::Word(std::mem::take(word)),
                line: word_line,
            });
        }
    }

    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, word_line, &mut toks);
                // Skip to end of line (the newline itself is handled by the loop).
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            '\n' => {
                flush(&mut word, word_line, &mut toks);
                line += 1;
            }
            '{' | '}' => {
                flush(&mut word, word_line, &mut toks);
                toks.push(Tok {
                    kind: if c == '{' {
                        TokKind::Open
                    } else {
                        TokKind::Close
                    },
                    line,
                });
            }
            '"' => {
                if word.is_empty() {
                    word_line = line;
                }
                let start = line;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some('\n') => line += 1,
                            Some(e) => word.push(e),
                            None => break,
                        },
                        '\n' => {
                            line += 1;
                            word.push('\n');
                        }
                        other => word.push(other),
                    }
                }
                if !closed {
                    return Err(ConfError::new(
                        origin,
                        start,
                        "unterminated double quote (a quoted value must end with `\"`)",
                    ));
                }
                // An empty quoted value is still a value.
                if word.is_empty() {
                    toks.push(Tok {
                        kind: TokKind::Word(String::new()),
                        line: word_line,
                    });
                }
            }
            c if c.is_whitespace() || c == '\0' => flush(&mut word, word_line, &mut toks),
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, word_line, &mut toks);
    Ok(toks)
}

/// Words and balanced blocks, before options are grouped.
#[derive(Debug, Clone)]
pub(super) enum Item {
    Word { text: String, line: usize },
    Block { line: usize, items: Vec<Item> },
}

pub(super) fn build_items(toks: Vec<Tok>, origin: &str) -> Result<Vec<Item>, ConfError> {
    // Stack of (line of the `{`, items collected so far).
    let mut stack: Vec<(usize, Vec<Item>)> = vec![(0, Vec::new())];
    for t in toks {
        match t.kind {
            TokKind::Word(text) => stack
                .last_mut()
                .expect("stack never empty")
                .1
                .push(Item::Word { text, line: t.line }),
            TokKind::Open => stack.push((t.line, Vec::new())),
            TokKind::Close => {
                if stack.len() == 1 {
                    return Err(ConfError::new(
                        origin,
                        t.line,
                        "unexpected `}` (no `{` is open here)",
                    ));
                }
                let (line, items) = stack.pop().expect("len > 1");
                stack
                    .last_mut()
                    .expect("stack never empty")
                    .1
                    .push(Item::Block { line, items });
            }
        }
    }
    if stack.len() > 1 {
        let (line, _) = stack.last().expect("len > 1");
        return Err(ConfError::new(
            origin,
            *line,
            "`{` opened here is never closed (missing `}`)",
        ));
    }
    Ok(stack.pop().expect("root").1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer_comments_and_braces() {
        let t = lex("a{b # c }\n}#x\n\"q w\"", "f").unwrap();
        let kinds: Vec<_> = t.iter().map(|t| (t.kind.clone(), t.line)).collect();
        assert_eq!(
            kinds,
            vec![
                (TokKind::Word("a".into()), 1),
                (TokKind::Open, 1),
                (TokKind::Word("b".into()), 1),
                (TokKind::Close, 2),
                (TokKind::Word("q w".into()), 3),
            ]
        );
    }
}
