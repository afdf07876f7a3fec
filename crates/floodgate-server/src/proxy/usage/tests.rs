use super::*;

fn scan(chunks: &[&[u8]], field: &str) -> Option<u64> {
    let mut s = UsageScanner::new(field);
    for c in chunks {
        s.feed(c);
    }
    s.finish()
}

#[test]
fn finds_the_usage_of_a_json_body() {
    let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":0}}}"#;
    assert_eq!(scan(&[body], "total_tokens"), Some(42));
    assert_eq!(scan(&[body], "prompt_tokens"), Some(12));
    assert_eq!(scan(&[body], "completion_tokens"), Some(30));
}

#[test]
fn finds_it_split_anywhere_across_frames() {
    let body = br#"{"usage": {"total_tokens" :  1834 }}"#;
    for cut in 0..body.len() {
        for cut2 in cut..body.len() {
            let (a, rest) = body.split_at(cut);
            let (b, c) = rest.split_at(cut2 - cut);
            assert_eq!(scan(&[a, b, c], "total_tokens"), Some(1834), "{cut} {cut2}");
        }
    }
}

#[test]
fn an_sse_stream_settles_on_the_chunk_that_carries_usage() {
    let stream: &[&[u8]] = &[
        b"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"total_tokens\\\": 999\"}}],\"usage\":null}\n\n",
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_",
        b"tokens\":12}}\n\n",
        b"data: [DONE]\n\n",
    ];
    assert_eq!(scan(stream, "total_tokens"), Some(12));
}

#[test]
fn no_usage_no_cost_and_numbers_are_capped() {
    assert_eq!(scan(&[b"{\"usage\":null}"], "total_tokens"), None);
    assert_eq!(scan(&[b"{\"total_tokens\": \"12\"}"], "total_tokens"), None);
    assert_eq!(
        scan(
            &[b"{\"total_tokens\": 99999999999999999999999}"],
            "total_tokens"
        ),
        Some(MAX_HITS)
    );
    // A number cut off by the end of the stream is still its value.
    assert_eq!(scan(&[b"\"total_tokens\":7"], "total_tokens"), Some(7));
}

#[test]
fn the_carry_stays_small() {
    let mut s = UsageScanner::new("total_tokens");
    s.feed(&vec![b'x'; 1 << 20]);
    assert!(s.carry.len() <= "\"total_tokens\"".len() + CARRY_EXTRA);
}
