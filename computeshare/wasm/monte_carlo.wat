;; monte-carlo: a seeded estimate of pi from points in a quarter circle.
;; stdin: seed (u64), samples (u64), little-endian.
;; stdout: inside (u64), samples (u64): pi is about 4 * inside / samples.
;; Points are two 31-bit draws of xorshift64 (the seed 0 is replaced by 1); a point is
;; inside when x*x + y*y < 2**62. Traps when stdin is shorter than 16 bytes.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $x (mut i64) (i64.const 1))
  (func $next (result i64)
    (global.set $x (i64.xor (global.get $x) (i64.shl (global.get $x) (i64.const 13))))
    (global.set $x (i64.xor (global.get $x) (i64.shr_u (global.get $x) (i64.const 7))))
    (global.set $x (i64.xor (global.get $x) (i64.shl (global.get $x) (i64.const 17))))
    (i64.shr_u (global.get $x) (i64.const 33)))
  (func (export "_start")
    (local $samples i64) (local $inside i64) (local $i i64) (local $a i64) (local $b i64)
    (i32.store (i32.const 0) (i32.const 32))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (if (i32.lt_u (i32.load (i32.const 8)) (i32.const 16)) (then unreachable))
    (if (i64.ne (i64.load (i32.const 32)) (i64.const 0))
      (then (global.set $x (i64.load (i32.const 32)))))
    (local.set $samples (i64.load (i32.const 40)))
    (block $done
      (loop $sample
        (br_if $done (i64.ge_u (local.get $i) (local.get $samples)))
        (local.set $a (call $next))
        (local.set $b (call $next))
        (if (i64.lt_u (i64.add (i64.mul (local.get $a) (local.get $a)) (i64.mul (local.get $b) (local.get $b)))
                      (i64.const 0x4000000000000000))
          (then (local.set $inside (i64.add (local.get $inside) (i64.const 1)))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $sample)))
    (i64.store (i32.const 48) (local.get $inside))
    (i64.store (i32.const 56) (local.get $samples))
    (i32.store (i32.const 0) (i32.const 48))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
