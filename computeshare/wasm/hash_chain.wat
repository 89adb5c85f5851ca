;; hash-chain: an iterated 64-bit hashing kernel.
;; stdin: rounds (u64, little-endian), then the seed bytes (at most 3,072).
;; stdout: 8 bytes, the state after FNV-1a over the seed and `rounds` splitmix64 steps.
;; Traps when stdin is shorter than 8 bytes.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0..8: iovec, 8..12: nread / nwritten, 16..24: output, 1024..: input
  (func $read_all (result i32)
    (local $total i32)
    (block $done
      (loop $more
        (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $total)))
        (i32.store (i32.const 4) (i32.sub (i32.const 4096) (local.get $total)))
        (br_if $done (i32.eqz (i32.load (i32.const 4))))
        (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (i32.eqz (i32.load (i32.const 8))))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $total))
  (func $mix (param $z i64) (result i64)
    (local.set $z (i64.mul (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 30)))
                           (i64.const 0xbf58476d1ce4e5b9)))
    (local.set $z (i64.mul (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 27)))
                           (i64.const 0x94d049bb133111eb)))
    (i64.xor (local.get $z) (i64.shr_u (local.get $z) (i64.const 31))))
  (func (export "_start")
    (local $len i32) (local $i i32) (local $state i64) (local $rounds i64) (local $r i64)
    (local.set $len (call $read_all))
    (if (i32.lt_u (local.get $len) (i32.const 8)) (then unreachable))
    (local.set $rounds (i64.load (i32.const 1024)))
    (local.set $state (i64.const 0xcbf29ce484222325))
    (local.set $i (i32.const 8))
    (block $seeded
      (loop $byte
        (br_if $seeded (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $state
          (i64.mul (i64.xor (local.get $state) (i64.load8_u (i32.add (i32.const 1024) (local.get $i))))
                   (i64.const 0x100000001b3)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $byte)))
    (block $hashed
      (loop $round
        (br_if $hashed (i64.ge_u (local.get $r) (local.get $rounds)))
        (local.set $state (call $mix (i64.xor (local.get $state) (local.get $r))))
        (local.set $r (i64.add (local.get $r) (i64.const 1)))
        (br $round)))
    (i64.store (i32.const 16) (local.get $state))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
