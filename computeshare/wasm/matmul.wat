;; matmul: C = A * B for seeded n x n matrices of 16-bit entries, in wrapping i64.
;; stdin: n (u32, 1..64), seed (u64), little-endian.
;; stdout: C, row by row, n * n little-endian i64.
;; A then B are filled row by row with the low 16 bits of successive xorshift64 states
;; (the seed 0 is replaced by 1). Traps on short input or n outside 1..64.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 0..8 iovec, 8..12 count, 32..44 input; A at 1024, B at A + 8n^2, C at B + 8n^2
  (global $x (mut i64) (i64.const 1))
  (func $next (result i64)
    (global.set $x (i64.xor (global.get $x) (i64.shl (global.get $x) (i64.const 13))))
    (global.set $x (i64.xor (global.get $x) (i64.shr_u (global.get $x) (i64.const 7))))
    (global.set $x (i64.xor (global.get $x) (i64.shl (global.get $x) (i64.const 17))))
    (i64.and (global.get $x) (i64.const 0xffff)))
  (func $fill (param $at i32) (param $count i32)
    (local $i i32)
    (block $done
      (loop $entry
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (i64.store (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 3))) (call $next))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $entry))))
  (func (export "_start")
    (local $n i32) (local $cells i32) (local $a i32) (local $b i32) (local $c i32)
    (local $i i32) (local $j i32) (local $k i32) (local $sum i64)
    (i32.store (i32.const 0) (i32.const 32))
    (i32.store (i32.const 4) (i32.const 12))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.lt_u (i32.load (i32.const 8)) (i32.const 12)) (then unreachable))
    (local.set $n (i32.load (i32.const 32)))
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 64))) (then unreachable))
    (if (i64.ne (i64.load (i32.const 36)) (i64.const 0))
      (then (global.set $x (i64.load (i32.const 36)))))
    (local.set $cells (i32.mul (local.get $n) (local.get $n)))
    (local.set $a (i32.const 1024))
    (local.set $b (i32.add (local.get $a) (i32.shl (local.get $cells) (i32.const 3))))
    (local.set $c (i32.add (local.get $b) (i32.shl (local.get $cells) (i32.const 3))))
    (if (i32.gt_u (i32.add (local.get $c) (i32.shl (local.get $cells) (i32.const 3)))
                  (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.const 1)))))
    (call $fill (local.get $a) (local.get $cells))
    (call $fill (local.get $b) (local.get $cells))
    (block $rows_done
      (loop $row
        (br_if $rows_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $j (i32.const 0))
        (block $cols_done
          (loop $col
            (br_if $cols_done (i32.ge_u (local.get $j) (local.get $n)))
            (local.set $sum (i64.const 0))
            (local.set $k (i32.const 0))
            (block $dot_done
              (loop $dot
                (br_if $dot_done (i32.ge_u (local.get $k) (local.get $n)))
                (local.set $sum (i64.add (local.get $sum) (i64.mul
                  (i64.load (i32.add (local.get $a) (i32.shl
                    (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $k)) (i32.const 3))))
                  (i64.load (i32.add (local.get $b) (i32.shl
                    (i32.add (i32.mul (local.get $k) (local.get $n)) (local.get $j)) (i32.const 3)))))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $dot)))
            (i64.store (i32.add (local.get $c) (i32.shl
              (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 3)))
              (local.get $sum))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $col)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row)))
    (i32.store (i32.const 0) (local.get $c))
    (i32.store (i32.const 4) (i32.shl (local.get $cells) (i32.const 3)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
